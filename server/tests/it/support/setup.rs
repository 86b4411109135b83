//! The one setup of the tests that act on the demo fleet: Runboard over the demo fleet, with
//! its staff.

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::Arc;

use runboard_core::config::Config;
use runboard_model::Role;
use runboard_testkit::{Backend, ChaosProxy, TestStore};

use super::{Person, TestApp, TestFleet, registered, spawn_app_configured, start_fleet};

/// Runboard over the demo fleet, every service of the fleet registered, and the people who
/// work with it. Asked for with [`setup`] or [`setup_with`], then awaited.
pub struct Setup {
    /// Runboard, serving on loopback over a store of its own on the setup's backend.
    pub app: TestApp,
    /// The demo fleet, shared with any other Runboard a test starts over it
    /// (`setup_with(s.fleet.clone(), …)`).
    pub fleet: Arc<TestFleet>,
    /// An operator who may approve: asks for the actions of most tests.
    pub alice: Person,
    /// An operator who may approve: approves Alice's actions.
    pub bob: Person,
    /// An approver who does not operate: the second approval where two are needed.
    pub carol: Person,
    /// A viewer: reads everything, may do nothing.
    pub vera: Person,
    /// An operator who may not approve.
    pub oscar: Person,
    proxy: Option<Arc<ChaosProxy>>,
}

impl Setup {
    /// The proxy in front of onboarding's mission control: cut it or slow it down. Only in a
    /// setup asked for with [`SetupBuilder::onboarding_behind_proxy`].
    pub fn proxy(&self) -> &ChaosProxy {
        self.proxy
            .as_deref()
            .expect("onboarding is behind a proxy only with .onboarding_behind_proxy()")
    }
}

/// Runboard on `backend` over a demo fleet of its own on the same backend.
pub fn setup<'a>(backend: Backend) -> SetupBuilder<'a> {
    SetupBuilder {
        backend,
        fleet: None,
        configure: Box::new(|_| ()),
        proxy: false,
    }
}

/// Runboard on `backend` over a demo fleet the test already started (and may have seeded).
pub fn setup_with<'a>(fleet: impl Into<Arc<TestFleet>>, backend: Backend) -> SetupBuilder<'a> {
    SetupBuilder {
        fleet: Some(fleet.into()),
        ..setup(backend)
    }
}

/// A [`Setup`] being asked for: its options, then `.await`.
pub struct SetupBuilder<'a> {
    backend: Backend,
    fleet: Option<Arc<TestFleet>>,
    configure: Box<dyn FnOnce(&mut Config) + 'a>,
    proxy: bool,
}

impl<'a> SetupBuilder<'a> {
    /// Runboard's config changed by `configure`, after the fleet's services are in it.
    pub fn configure(mut self, configure: impl FnOnce(&mut Config) + 'a) -> Self {
        let before = self.configure;
        self.configure = Box::new(move |config| {
            before(config);
            configure(config);
        });
        self
    }

    /// Runboard reaches onboarding's mission control through a proxy the test can cut or
    /// slow down ([`Setup::proxy`]).
    pub fn onboarding_behind_proxy(mut self) -> Self {
        self.proxy = true;
        self
    }

    async fn start(self) -> Setup {
        let fleet = match self.fleet {
            Some(fleet) => fleet,
            None => Arc::new(start_fleet(self.backend).await),
        };
        let mut services: Vec<_> = fleet.fleet.services().iter().map(registered).collect();
        let proxy = if self.proxy {
            let onboarding = services
                .iter_mut()
                .find(|s| s.name.as_str() == "onboarding")
                .unwrap();
            let upstream = onboarding.graphql_url.socket_addrs(|| None).unwrap()[0];
            let proxy = ChaosProxy::start(upstream).await;
            onboarding.graphql_url.set_port(Some(proxy.port())).unwrap();
            Some(proxy)
        } else {
            None
        };
        let configure = self.configure;
        let (app, ()) = spawn_app_configured(TestStore::new(self.backend).await, |config, _| {
            config.services = services;
            configure(config);
        })
        .await;
        Setup {
            alice: app.person("alice", &[Role::Operator, Role::Approver]).await,
            bob: app.person("bob", &[Role::Operator, Role::Approver]).await,
            carol: app.person("carol", &[Role::Approver]).await,
            vera: app.person("vera", &[Role::Viewer]).await,
            oscar: app.person("oscar", &[Role::Operator]).await,
            app,
            fleet,
            proxy,
        }
    }
}

impl<'a> IntoFuture for SetupBuilder<'a> {
    type Output = Setup;
    type IntoFuture = Pin<Box<dyn Future<Output = Setup> + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.start())
    }
}
