pub mod layout;
pub mod local_time;
pub mod progress_bar;
pub mod relative_time;
pub mod status;
