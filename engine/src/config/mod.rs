//! Configuration and rule files (being written).
