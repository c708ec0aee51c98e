//! Every magic number, version field and fixed name of the on-disk repository format.
//!
//! # DO NOT MODIFY
//!
//! Repositories written by earlier builds must stay readable and shared targets are read by
//! appliances of different ages. Changing any value here silently breaks every existing
//! repository. A format change means: add a new constant, bump the matching `*_VERSION`,
//! keep the reader for the old version, and describe both in `docs/REPOSITORY-FORMAT.md`.

/// `repo.json` `format` field: names what kind of repository this is.
pub const REPO_FORMAT_NAME: &str = "blksnap-appliance-repository";
/// `repo.json` `version` field written by this build (and the newest one it reads).
pub const REPO_VERSION: u32 = 1;

/// Key of the repository description object at the repository root.
pub const REPO_CONFIG_KEY: &str = "repo.json";
/// Name of the writer lock file at the root of a local repository.
pub const LOCK_FILE_NAME: &str = "lock";
/// Key prefix under which chunk objects live: `chunks/<first 2 hex>/<64 hex>`.
pub const CHUNKS_PREFIX: &str = "chunks";
/// Key prefix under which backups live: `backups/<id>/index` and `backups/<id>/manifest.json`.
pub const BACKUPS_PREFIX: &str = "backups";
/// Object name of a backup's chunk index.
pub const INDEX_NAME: &str = "index";
/// Object name of a backup's manifest; its presence is what publishes a backup.
pub const MANIFEST_NAME: &str = "manifest.json";

/// Temporary objects are named `.<final name>.tmp-<nonce>` next to their final name.
/// Names starting with [`TEMP_PREFIX`] are never valid keys, so listings skip them.
pub const TEMP_PREFIX: char = '.';
/// Infix that marks a temporary object.
pub const TEMP_INFIX: &str = ".tmp-";

/// Magic at the start of every chunk object.
pub const CHUNK_MAGIC: [u8; 8] = *b"BSNPCHK\0";
/// Chunk object layout version.
pub const CHUNK_VERSION: u8 = 1;
/// Chunk object header length in bytes: magic(8) version(1) encoding(1) reserved(2) len(4).
pub const CHUNK_HEADER_LEN: usize = 16;
/// Chunk payload encoding: the uncompressed bytes (used when zstd does not make them smaller).
pub const CHUNK_ENCODING_RAW: u8 = 0;
/// Chunk payload encoding: one zstd frame.
pub const CHUNK_ENCODING_ZSTD: u8 = 1;

/// Magic at the start of every index object.
pub const INDEX_MAGIC: [u8; 8] = *b"BSNPIDX\0";
/// Index object layout version.
pub const INDEX_VERSION: u32 = 1;
/// Index header length: magic(8) version(4) chunk_size(4) image_size(8) chunk_count(8).
pub const INDEX_HEADER_LEN: usize = 32;
/// Length of one index entry (a SHA-256 digest, or all zero bytes for a zero chunk).
pub const INDEX_ENTRY_LEN: usize = 32;
/// Length of the index trailer (SHA-256 of everything before it).
pub const INDEX_TRAILER_LEN: usize = 32;

/// Manifest `manifest_version` written by this build (and the newest one it reads).
pub const MANIFEST_VERSION: u32 = 1;
/// Domain separation prefix of the content digest (see `docs/REPOSITORY-FORMAT.md`).
pub const CONTENT_DIGEST_DOMAIN: &[u8] = b"blksnap-repo content v1\0";

/// Default chunk size: 4 MiB of the image.
pub const DEFAULT_CHUNK_SIZE: u32 = 4 << 20;
/// Smallest chunk size accepted.
pub const MIN_CHUNK_SIZE: u32 = 4 << 10;
/// Largest chunk size accepted (also bounds the memory one chunk may take to decode).
pub const MAX_CHUNK_SIZE: u32 = 64 << 20;
/// Default zstd level.
pub const DEFAULT_ZSTD_LEVEL: i32 = 3;

/// qcow2 export: magic `QFI\xfb`.
pub const QCOW2_MAGIC: u32 = 0x5146_49fb;
/// qcow2 export: format version written.
pub const QCOW2_VERSION: u32 = 3;
/// qcow2 export: log2 of the cluster size (64 KiB, qemu-img's default).
pub const QCOW2_CLUSTER_BITS: u32 = 16;
/// qcow2 export: log2 of the refcount width in bits (16-bit refcounts).
pub const QCOW2_REFCOUNT_ORDER: u32 = 4;
/// qcow2 export: length of the version 3 header without optional fields.
pub const QCOW2_HEADER_LEN: u32 = 104;
/// qcow2 export: L1/L2 entry flag "refcount is exactly one".
pub const QCOW2_OFLAG_COPIED: u64 = 1 << 63;
