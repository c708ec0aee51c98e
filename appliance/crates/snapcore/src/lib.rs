//! Supervisor core (work in progress).
#![deny(unsafe_code)]

pub mod devices;
pub mod error;
pub mod formats;
pub mod jobs {
    /// placeholder
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct JobId(pub u64);
    impl std::fmt::Display for JobId {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "{}", self.0)
        }
    }
}
