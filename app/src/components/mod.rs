pub mod action_state;
pub mod layout;
pub mod live_read;
pub mod local_time;
pub mod progress_bar;
pub mod refresh;
pub mod relative_time;
pub mod status;
