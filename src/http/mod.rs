//! The actix-web front end: routes, one `create_app()` for main and tests, server start-up
//! and graceful shutdown.

mod admin;
mod body;
pub mod busy_poll;
pub mod error;
mod handlers;
mod messages;
pub mod middleware;

pub use error::ApiError;
pub use handlers::{
    X_DEJA_CACHE, X_DEJA_CACHE_ENTRY, X_DEJA_CACHE_REFUSED, X_DEJA_CACHE_SIMILARITY, X_DEJA_MODEL,
    X_DEJA_OVERHEAD_US, X_DEJA_PROVIDER,
};

use crate::config::Config;
use crate::gateway::Gateway;
use actix_web::body::MessageBody;
use actix_web::dev::{ServerHandle, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::{web, App, HttpServer, Route};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

/// Shared state for every worker.
pub struct AppState {
    pub gateway: Arc<Gateway>,
    /// Bytes held by request bodies still being received (`server.max_pending_body_bytes`).
    pub pending_bodies: body::PendingBodies,
}

impl AppState {
    pub fn new(gateway: Arc<Gateway>) -> Self {
        AppState {
            gateway,
            pending_bodies: body::PendingBodies::default(),
        }
    }

    /// The limits request bodies are read under (`[server]`).
    pub fn body_limits(&self) -> body::BodyLimits {
        let s = &self.gateway.config.server;
        body::BodyLimits {
            max_bytes: s.max_body_bytes,
            timeout: Duration::from_secs(s.body_timeout_secs),
            max_pending_bytes: s.max_pending_body_bytes,
        }
    }
}

fn resource(path: &str, route: Route) -> actix_web::Resource {
    web::resource(path)
        .route(route)
        .default_service(web::to(handlers::method_not_allowed))
}

fn anthropic_resource(path: &str, route: Route) -> actix_web::Resource {
    web::resource(path)
        .route(route)
        .default_service(web::to(messages::method_not_allowed))
}

/// The application: every route, the request-id/log middleware and the OpenAI-shaped
/// 404/405 fallbacks. Used by `deja serve` and by the tests.
pub fn create_app(
    state: web::Data<AppState>,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .app_data(state)
        .wrap(actix_web::middleware::from_fn(middleware::request_context))
        .service(resource(
            "/v1/chat/completions",
            web::post().to(handlers::chat_completions),
        ))
        .service(resource(
            "/v1/completions",
            web::post().to(handlers::completions),
        ))
        .service(resource(
            "/v1/embeddings",
            web::post().to(handlers::embeddings),
        ))
        .service(resource("/v1/models", web::get().to(handlers::models)))
        // The Anthropic-compatible API: errors in Anthropic's shape.
        .service(anthropic_resource(
            "/v1/messages",
            web::post().to(messages::messages),
        ))
        .service(anthropic_resource(
            "/v1/messages/count_tokens",
            web::post().to(messages::count_tokens),
        ))
        .service(
            web::scope("/anthropic")
                .service(anthropic_resource(
                    "/v1/messages",
                    web::post().to(messages::messages),
                ))
                .service(anthropic_resource(
                    "/v1/messages/count_tokens",
                    web::post().to(messages::count_tokens),
                ))
                .default_service(web::to(messages::not_found)),
        )
        .service(resource("/health", web::get().to(handlers::health)))
        .service(resource(
            "/metrics",
            web::get().to(handlers::metrics_on_main_port),
        ))
        .service(resource("/ready", web::get().to(handlers::ready)))
        .service(resource("/admin/cache/stats", web::get().to(admin::stats)))
        .service(
            web::resource("/admin/cache/entries")
                .route(web::get().to(admin::list))
                .route(web::post().to(admin::insert))
                .default_service(web::to(handlers::method_not_allowed)),
        )
        .service(
            web::resource("/admin/cache/entries/{id}")
                .route(web::get().to(admin::get))
                .route(web::delete().to(admin::delete))
                .default_service(web::to(handlers::method_not_allowed)),
        )
        .service(resource(
            "/admin/cache/search",
            web::post().to(admin::search),
        ))
        .service(resource(
            "/admin/cache/export",
            web::get().to(admin::export),
        ))
        .service(resource(
            "/admin/cache",
            web::delete().to(admin::delete_all),
        ))
        .default_service(web::to(handlers::not_found))
}

/// A server bound and running inside the current actix System.
pub struct Running {
    pub addr: SocketAddr,
    /// Where `/metrics` is served when `metrics.listen` is set.
    pub metrics_addr: Option<SocketAddr>,
    pub handle: ServerHandle,
    /// Resolves when the main server has stopped (and the metrics server with it).
    pub server: std::pin::Pin<Box<dyn std::future::Future<Output = std::io::Result<()>>>>,
    pub state: web::Data<AppState>,
}

/// `/metrics` alone, for `metrics.listen`: one worker, everything else 404.
fn start_metrics_server(
    state: web::Data<AppState>,
    addr: &str,
) -> anyhow::Result<(SocketAddr, actix_web::dev::Server)> {
    let listener = TcpListener::bind(addr)
        .map_err(|e| anyhow::anyhow!("cannot listen on metrics.listen {addr}: {e}"))?;
    let bound = listener.local_addr()?;
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .service(resource("/metrics", web::get().to(handlers::metrics)))
            .default_service(web::to(handlers::not_found))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .run();
    Ok((bound, server))
}

/// Start the gateway's actors and bind the HTTP server on `listener`.
/// Call inside a running actix System; await `server` to run until shutdown.
pub fn start(config: Config, listener: TcpListener) -> anyhow::Result<Running> {
    let shutdown = config.server.shutdown_timeout_secs;
    let busy_poll = Duration::from_micros(config.server.busy_poll_us);
    let workers = match config.server.workers {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    };
    let gateway = Gateway::start(config)?;
    let state = web::Data::new(AppState::new(gateway));
    let addr = listener.local_addr()?;
    let app_state = state.clone();
    let server = HttpServer::new(move || {
        busy_poll::install(busy_poll);
        create_app(app_state.clone())
    })
    // Streamed chunks are small writes: without TCP_NODELAY, Nagle's algorithm holds
    // each one until the client's delayed ACK (~40 ms) arrives.
    .on_connect(|conn, _ext| {
        if let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
            let _ = tcp.set_nodelay(true);
        }
    })
    .workers(workers)
    .backlog(4096)
    .max_connection_rate(1024)
    .keep_alive(Duration::from_secs(75))
    .shutdown_timeout(shutdown)
    // Signals are deja's (see `stop_on_signals`): actix-server's own handling stops the
    // whole actix System shortly after the server, racing the cache's final dump, and
    // treats SIGINT as a forced stop that drops requests in flight.
    .disable_signals()
    .listen(listener)?
    .run();
    let handle = server.handle();
    let metrics = match state.gateway.config.metrics.listen.as_str() {
        "" => None,
        listen => Some(start_metrics_server(state.clone(), listen)?),
    };
    let metrics_addr = metrics.as_ref().map(|(a, _)| *a);
    let server = Box::pin(async move {
        let Some((_, m)) = metrics else {
            return server.await;
        };
        let mh = m.handle();
        actix_rt::spawn(m);
        let r = server.await;
        mh.stop(true).await;
        r
    });
    Ok(Running {
        addr,
        metrics_addr,
        handle,
        server,
        state,
    })
}

/// A server on its own thread with its own actix System: for tests and benchmarks.
/// Dropping the handle does not stop it; call `stop`.
pub struct Spawned {
    pub addr: SocketAddr,
    pub metrics_addr: Option<SocketAddr>,
    pub handle: ServerHandle,
    pub state: web::Data<AppState>,
    pub thread: std::thread::JoinHandle<()>,
}

impl Spawned {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Graceful stop, then wait for the thread.
    pub fn stop(self) {
        stop_server(self.handle.clone(), true);
        let _ = self.thread.join();
    }
}

/// Graceful shutdown on SIGTERM or SIGINT: stop accepting, let requests in flight finish
/// (bounded by `server.shutdown_timeout_secs`); a second signal stops at once. The caller
/// awaits the server, then persists state (`Gateway::shutdown`) and stops the System.
/// Call inside the System running the server (the `deja serve` binary; tests stop their
/// servers through the handle).
pub fn stop_on_signals(handle: ServerHandle) -> std::io::Result<()> {
    use actix_rt::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    actix_rt::spawn(async move {
        let mut graceful = true;
        loop {
            let name = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
            if graceful {
                tracing::info!(signal = name, "shutting down: finishing requests in flight");
            } else {
                tracing::warn!(signal = name, "second signal: stopping now");
            }
            // Not awaited: `stop` resolves when the server is down, and a second signal
            // must still be heard meanwhile.
            let h = handle.clone();
            actix_rt::spawn(async move { h.stop(graceful).await });
            graceful = false;
        }
    });
    Ok(())
}

/// Stop a server from any thread, even one already driving an async runtime.
pub fn stop_server(handle: ServerHandle, graceful: bool) {
    let t = std::thread::spawn(move || actix_rt::System::new().block_on(handle.stop(graceful)));
    let _ = t.join();
}

/// Start the gateway on 127.0.0.1 (port 0 → a free port) on a new thread; returns once it
/// is ready (`/ready` would say 200), or after 30 s.
pub fn spawn(mut config: Config) -> anyhow::Result<Spawned> {
    let listener = TcpListener::bind((config.server.host.as_str(), config.server.port))?;
    config.server.port = listener.local_addr()?.port();
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let sys = actix_rt::System::new();
        sys.block_on(async move {
            match start(config, listener) {
                Ok(r) => {
                    let _ = tx.send(Ok((
                        (r.addr, r.metrics_addr),
                        r.handle.clone(),
                        r.state.clone(),
                    )));
                    let _ = r.server.await;
                    r.state.gateway.shutdown().await;
                    actix_rt::System::current().stop();
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                    actix_rt::System::current().stop();
                }
            }
        });
        // Let the system controller stop every arbiter (and drop their actors).
        let _ = sys.run();
    });
    let ((addr, metrics_addr), handle, state) = rx.recv()??;
    // Like a load balancer watching /ready: requests start once model discovery ended
    // (bounded: discovery is bounded by each provider's timeouts).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !state.gateway.is_ready() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(Spawned {
        addr,
        metrics_addr,
        handle,
        state,
        thread,
    })
}
