//! The admission webhook served by axum over rustls: `/mutate-pods` adds output volumes, the
//! output-persisting container and the newest versioned secret names to QuarksJob pods;
//! `/validate-quarksjobs` rejects QuarksJobs that cannot work.
//!
//! Not built yet: this is the webhook issue's work.
