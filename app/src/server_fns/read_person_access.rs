use chrono::{DateTime, Utc};
use leptos::prelude::*;
use runboard_model::PersonAccess;
use serde::{Deserialize, Serialize};

use super::ScreenError;

/// A person's access and the server's clock when it was read, to tell live tokens from
/// expired ones the same way on the server and in the browser.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PersonAccessRead {
    pub read_at: DateTime<Utc>,
    pub access: PersonAccess,
}

/// One person's sessions that have not ended and all their tokens, for admins.
#[server(prefix = "/rpc", endpoint = "person_access")]
pub async fn read_person_access(subject: String) -> Result<PersonAccessRead, ScreenError> {
    let (app, admin) = super::app_and_user::<ReadPersonAccess>()?;
    let access = app.store.access_of(&admin, &subject).await?;
    Ok(PersonAccessRead {
        read_at: Utc::now(),
        access,
    })
}
