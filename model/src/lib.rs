//! The product's words as plain data, shared by the server and the browser.
//!
//! Nothing here talks to a database or the network: these types cross the wire
//! between server functions and hydrated pages, so they must build for wasm too.

mod action;
mod alert;
mod api_reference;
mod batch;
mod identity;
mod ids;
mod link;
mod money;
mod overview;
mod pace;
mod saga;
mod service;

pub use action::{
    Action, ActionProgress, ActionSpec, ActionState, Approval, ArgumentSpec, DryRun, Effect,
    EffectGroup, EntityResult, EntityState, EntityStep, Preview, RunbookStep, SavedRunbook,
    StepPreview, StepState,
};
pub use alert::{Acknowledgement, Alert, AlertBoard, AlertState, Silence, UnknownWatch, Watch};
pub use api_reference::{ApiOperation, ApiParameter, ApiReference, ApiSchema};
pub use batch::{
    BatchItem, BatchItemPage, BatchItemStatus, BatchPace, BatchProgress, PACE_WINDOW_MINUTES,
};
pub use identity::{
    AccessRevoked, ApiToken, IssuedApiToken, PersonAccess, PersonKey, PersonWithAccess, Role,
    SessionSeen, SignedIn, User,
};
pub use ids::{ActionId, Digest, IdempotencyKey};
pub use link::{query_string, url_encode};
pub use money::{Money, add_to_totals, money_list};
pub use overview::{ServiceFunds, ServiceOverview};
pub use pace::{Execution, Pace, call_sizes};
pub use saga::{
    ErrorGroup, LookupMatches, LookupResult, Saga, SagaCounts, SagaEvent, SagaFact, SagaPage,
    SagaQuery, SagaStatus,
};
pub use service::{DiscoveryNote, RegisteredService, ServiceName, ServiceNameError, ServiceSource};
