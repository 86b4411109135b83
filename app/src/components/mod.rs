pub mod layout;
pub mod local_time;
pub mod relative_time;
pub mod status;
