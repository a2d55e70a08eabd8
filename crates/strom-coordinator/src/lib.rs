//! Group coordinator (placeholder; being implemented).
