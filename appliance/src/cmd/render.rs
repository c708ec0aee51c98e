//! Readable output of the daemon's JSON: aligned tables, sizes, rates, durations.

use serde_json::Value;

/// A string field, or `-`.
pub fn text(v: &Value) -> String {
    match v {
        Value::String(s) if !s.is_empty() => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => "-".to_owned(),
    }
}

/// Bytes in binary units (`1.5 GiB`).
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Seconds as `1h02m03s`, `4m05s` or `6s`.
pub fn duration(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if h > 0 {
        format!("{h}h{m:02}m{s:02}s")
    } else if m > 0 {
        format!("{m}m{s:02}s")
    } else {
        format!("{s}s")
    }
}

/// Prints rows under a header, columns padded to their widest cell.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(&widths).enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `GET /api/v1/devices`.
pub fn devices(list: &Value) -> String {
    let rows: Vec<Vec<String>> = items(list)
        .iter()
        .map(|d| {
            vec![
                text(&d["name"]),
                size(d["size_bytes"].as_u64().unwrap_or(0)),
                text(&d["model"]),
                text(&d["serial"]),
                text(&d["fs_type"]),
                text(&d["in_use"]),
                text(&d["id"]),
            ]
        })
        .collect();
    table(
        &["NAME", "SIZE", "MODEL", "SERIAL", "FS", "IN USE", "ID"],
        &rows,
    )
}

/// `GET /api/v1/snapshots`.
pub fn snapshots(list: &Value) -> String {
    let rows: Vec<Vec<String>> = items(list).iter().map(snapshot_row).collect();
    table(&["ID", "STATE", "DEVICES", "STORAGE", "JOB"], &rows)
}

fn snapshot_row(s: &Value) -> Vec<String> {
    let devices: Vec<String> = items(&s["devices"])
        .iter()
        .map(|d| match d["image"].as_str() {
            Some(image) => format!("{}={image}", text(&d["name"])),
            None => text(&d["name"]),
        })
        .collect();
    let storage = &s["storage"];
    vec![
        text(&s["id"]),
        text(&s["state"]),
        devices.join(","),
        format!(
            "{} of {} ({})",
            size(storage["given_bytes"].as_u64().unwrap_or(0)),
            size(storage["total_bytes"].as_u64().unwrap_or(0)),
            text(&storage["description"])
        ),
        text(&s["job"]),
    ]
}

/// `POST /api/v1/snapshots`: one snapshot.
pub fn snapshot(s: &Value) -> String {
    table(
        &["ID", "STATE", "DEVICES", "STORAGE", "JOB"],
        &[snapshot_row(s)],
    )
}

/// `GET/POST /api/v1/settings/config-disk`.
pub fn config_disk(v: &Value) -> String {
    let dir = text(&v["state_dir"]);
    match (v["device"].as_str(), v["persistent"].as_bool()) {
        (Some(device), _) => format!("settings are kept on {device}, mounted on {dir}\n"),
        (None, Some(true)) => format!("settings are kept in {dir}\n"),
        _ => format!(
            "settings are kept in memory ({dir}): `appliance config-disk --format DEVICE` keeps them on a disk\n"
        ),
    }
}

/// `GET /api/v1/backups`.
pub fn backups(catalogue: &Value) -> String {
    let rows: Vec<Vec<String>> = items(&catalogue["backups"])
        .iter()
        .map(|b| {
            let disk = &b["disk"];
            let disk = match (disk["name"].as_str(), disk["serial"].as_str()) {
                (Some(name), Some(serial)) => format!("{name} ({serial})"),
                _ => text(&disk["name"]),
            };
            vec![
                text(&b["backup_id"]),
                text(&b["kind"]),
                disk,
                size(b["image_size"].as_u64().unwrap_or(0)),
                size(b["stored_bytes"].as_u64().unwrap_or(0)),
                text(&b["created"]),
            ]
        })
        .collect();
    let mut out = format!("repository: {}\n", text(&catalogue["repository"]));
    out.push_str(&table(
        &["BACKUP", "KIND", "DISK", "SIZE", "STORED", "CREATED"],
        &rows,
    ));
    for u in items(&catalogue["unreadable"]) {
        out.push_str(&format!(
            "unreadable: {}: {}\n",
            text(&u["backup_id"]),
            text(&u["error"])
        ));
    }
    out
}

/// `GET /api/v1/jobs`.
pub fn jobs(list: &Value) -> String {
    let rows: Vec<Vec<String>> = items(list)
        .iter()
        .map(|j| {
            vec![
                text(&j["id"]),
                text(&j["kind"]),
                text(&j["state"]),
                format!("{}%", j["progress"]["percent"].as_u64().unwrap_or(0)),
                text(&j["description"]),
            ]
        })
        .collect();
    table(&["JOB", "KIND", "STATE", "DONE", "DESCRIPTION"], &rows)
}

/// One job in detail.
pub fn job(j: &Value) -> String {
    let p = &j["progress"];
    let mut out = format!(
        "job {}: {} {} ({})\n",
        text(&j["id"]),
        text(&j["kind"]),
        text(&j["state"]),
        text(&j["description"])
    );
    out.push_str(&format!("progress: {}\n", progress(p)));
    if let Some(err) = j["error"].as_object() {
        out.push_str(&format!(
            "error: {} ({})\n",
            text(&err["message"]),
            text(&err["code"])
        ));
    }
    if let Some(download) = j["download"].as_str() {
        out.push_str(&format!("download: {download}\n"));
    }
    if !j["result"].is_null() {
        out.push_str(&format!("result: {}\n", j["result"]));
    }
    for line in items(&j["log"]) {
        out.push_str(&format!("  {}\n", text(line)));
    }
    out
}

/// A progress view as one line: phase, bytes, percent, rate, ETA.
pub fn progress(p: &Value) -> String {
    let done = p["done_bytes"].as_u64().unwrap_or(0);
    let total = p["total_bytes"].as_u64().unwrap_or(0);
    let mut line = format!(
        "{} {} / {} {:>3}%",
        text(&p["phase"]),
        size(done),
        size(total),
        p["percent"].as_u64().unwrap_or(0)
    );
    let rate = p["bytes_per_sec"].as_u64().unwrap_or(0);
    if rate > 0 {
        line.push_str(&format!(" {}/s", size(rate)));
    }
    if let Some(eta) = p["eta_secs"].as_u64() {
        line.push_str(&format!(" ETA {}", duration(eta)));
    }
    line
}

fn items(v: &Value) -> &[Value] {
    v.as_array().map_or(&[], Vec::as_slice)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn sizes_and_durations() {
        assert_eq!(size(512), "512 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(8 << 30), "8.0 GiB");
        assert_eq!(duration(5), "5s");
        assert_eq!(duration(125), "2m05s");
        assert_eq!(duration(3723), "1h02m03s");
    }

    #[test]
    fn tables_align() {
        let out = table(
            &["A", "B"],
            &[
                vec!["long".into(), "x".into()],
                vec!["s".into(), "y".into()],
            ],
        );
        assert_eq!(out, "A     B\nlong  x\ns     y\n");
    }

    #[test]
    fn device_and_progress_lines() {
        let list = json!([{"name": "vda", "size_bytes": 1073741824u64, "model": null,
            "serial": "prod0", "fs_type": "ext4", "in_use": null, "id": "serial:prod0"}]);
        let out = devices(&list);
        assert!(out.lines().nth(1).unwrap().starts_with("vda   1.0 GiB  -"));
        assert!(out.contains("serial:prod0"));
        let p = json!({"phase": "backup", "done_bytes": 1048576, "total_bytes": 2097152,
            "percent": 50, "bytes_per_sec": 1048576, "eta_secs": 1});
        assert_eq!(
            progress(&p),
            "backup 1.0 MiB / 2.0 MiB  50% 1.0 MiB/s ETA 1s"
        );
    }
}
