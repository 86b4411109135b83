//! A TCP proxy in front of the test database that a test can cut and restore, to see
//! what users see when the store goes away (after crates.io's `ChaosProxy`).

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct ChaosProxy {
    port: u16,
    cut: watch::Sender<bool>,
}

impl ChaosProxy {
    /// Starts proxying a loopback port to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Arc<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let (cut, _) = watch::channel(false);
        let proxy = Arc::new(Self { port, cut });
        let cut_signal = proxy.cut.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                if *cut_signal.borrow() {
                    // While cut, connections are accepted and dropped at once, as a dead host would.
                    continue;
                }
                let mut is_cut = cut_signal.subscribe();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = copy_bidirectional(&mut client, &mut server) => {}
                        _ = is_cut.wait_for(|cut| *cut) => {}
                    }
                });
            }
        });
        proxy
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Drops every open connection and refuses new ones.
    pub fn cut(&self) {
        self.cut.send_replace(true);
    }

    pub fn restore(&self) {
        self.cut.send_replace(false);
    }
}
