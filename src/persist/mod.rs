//! `quarks-job persist-output`: waits for the job containers' output files and writes them into
//! Secrets and versioned secrets.
//!
//! Not built yet: this is the persist-output issue's work.
