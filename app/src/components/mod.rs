pub mod layout;
pub mod local_time;
