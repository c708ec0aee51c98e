//! Files that restore and export jobs wrote to the target: list, download, delete.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use axum::Json;
use tokio_util::io::ReaderStream;

use super::failure::{blocking, ApiPath};
use super::model::FileView;
use super::{ApiError, AppState};
use crate::api::error::ErrorBody;
use crate::services::target::FileArea;

/// Every restored and exported file.
#[utoipa::path(get, path = "/api/v1/files", tag = "files",
    responses((status = 200, body = Vec<FileView>), (status = 409, body = ErrorBody),
        (status = 401, body = ErrorBody)))]
pub async fn list(State(state): State<AppState>) -> Result<Json<Vec<FileView>>, ApiError> {
    let services = state.services.clone();
    let files = blocking(move || Ok(services.files()?)).await?;
    Ok(Json(
        files
            .into_iter()
            .map(|f| FileView::new(f.area, f.name, f.size_bytes, f.modified_unix))
            .collect(),
    ))
}

/// Downloads a file (`application/octet-stream`).
#[utoipa::path(get, path = "/api/v1/files/{area}/{name}", tag = "files",
    params(("area" = String, Path, description = "`restores` or `exports`"),
        ("name" = String, Path, description = "file name")),
    responses((status = 200, content_type = "application/octet-stream", body = Vec<u8>),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 401, body = ErrorBody)))]
pub async fn download(
    State(state): State<AppState>,
    ApiPath((area, name)): ApiPath<(FileArea, String)>,
) -> Result<Response, ApiError> {
    let services = state.services.clone();
    let lookup = name.clone();
    let path = blocking(move || Ok(services.file_path(area, &lookup)?)).await?;
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(|e| ApiError::Internal(format!("cannot open {}: {e}", path.display())))?;
    let len = file
        .metadata()
        .await
        .map_err(|e| ApiError::Internal(format!("cannot stat {}: {e}", path.display())))?
        .len();
    let mut response = Response::new(Body::from_stream(ReaderStream::with_capacity(
        file,
        256 * 1024,
    )));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    // The name passed check_file_name: plain ASCII without quotes.
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

/// Deletes a file.
#[utoipa::path(delete, path = "/api/v1/files/{area}/{name}", tag = "files",
    params(("area" = String, Path, description = "`restores` or `exports`"),
        ("name" = String, Path, description = "file name")),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 401, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    ApiPath((area, name)): ApiPath<(FileArea, String)>,
) -> Result<StatusCode, ApiError> {
    let services = state.services.clone();
    blocking(move || Ok(services.delete_file(area, &name)?)).await?;
    Ok(StatusCode::NO_CONTENT)
}
