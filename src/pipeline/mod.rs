//! The deploy pipeline's edges: the on-disk layout of environments and releases.
//! (The stages themselves arrive with the runner.)

pub mod layout;
