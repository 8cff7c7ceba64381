//! os_disk
