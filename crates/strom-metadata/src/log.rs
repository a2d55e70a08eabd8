//! The local metadata log: committed record batches in `<dir>/__cluster_metadata-0/`.
