//! Tests of the log against the simulated disk.
