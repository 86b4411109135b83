//! A client's `Idempotency-Key` on a request for an action: a retry after a timeout finds
//! the action its first request made, and never makes a second one.

use sha2::{Digest, Sha256};

use runboard_model::{Action, ActionId, User};

use super::{ActionError, ActionRequest};
use crate::App;
use crate::db::on_pool;

/// The longest key taken: a UUID fits many times over.
const MAX_KEY_LENGTH: usize = 255;

/// A key and the digest of the request it came with, parsed at the edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestKey {
    key: String,
    digest: String,
}

impl RequestKey {
    /// The key a client sent with `request`: printable ASCII, at most 255 characters.
    pub fn new(key: &str, request: &ActionRequest) -> Result<Self, ActionError> {
        if key.is_empty()
            || key.len() > MAX_KEY_LENGTH
            || !key.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(ActionError::BadArguments(format!(
                "the Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable ASCII characters without spaces, such as a UUID"
            )));
        }
        let body = serde_json::to_string(request).expect("a request serializes");
        let digest = crate::audit::hex(&Sha256::digest(body.as_bytes()));
        Ok(Self {
            key: key.to_owned(),
            digest,
        })
    }

    pub(crate) fn key(&self) -> &str {
        &self.key
    }

    pub(crate) fn digest(&self) -> &str {
        &self.digest
    }
}

impl App {
    /// The action `user`'s earlier request under this key made, if any. The same key with
    /// another request is refused: the client reused a key, and guessing which it meant
    /// could run the wrong action.
    pub(super) async fn action_of_key(
        &self,
        user: &User,
        key: &RequestKey,
    ) -> Result<Option<Action>, ActionError> {
        let found: Option<(ActionId, Option<String>)> = on_pool!(self.store.pool, |pool| {
            sqlx::query_as(
                "SELECT id, request_digest FROM action WHERE requester = $1 AND request_key = $2",
            )
            .bind(&user.subject)
            .bind(key.key())
            .fetch_optional(pool)
            .await?
        });
        match found {
            None => Ok(None),
            Some((id, digest)) if digest.as_deref() == Some(key.digest()) => {
                Ok(Some(self.action(&id).await?))
            }
            Some((id, _)) => Err(ActionError::Conflict(format!(
                "the Idempotency-Key {:?} was used for another request (action {id}); send a new key with a new request",
                key.key()
            ))),
        }
    }
}
