//! Redis in a Docker container through `testcontainers` (feature `testcontainers`).

use testcontainers::core::{IntoContainerPort, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage};

use crate::error::Result;

/// The image used by [`RedisContainer::start`].
pub const DEFAULT_IMAGE: (&str, &str) = ("redis", "7-alpine");

/// A Redis server in a Docker container; removed when dropped.
///
/// Needs a reachable Docker engine at run time; use [`crate::RedisServer`]
/// where `redis-server` is installed locally.
pub struct RedisContainer {
    container: ContainerAsync<GenericImage>,
    host: String,
    port: u16,
}

impl std::fmt::Debug for RedisContainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisContainer")
            .field("id", &self.container.id())
            .field("host", &self.host)
            .field("port", &self.port)
            .finish()
    }
}

impl RedisContainer {
    /// Start `redis:7-alpine` and wait until it accepts connections.
    pub async fn start() -> Result<Self> {
        Self::start_image(DEFAULT_IMAGE.0, DEFAULT_IMAGE.1).await
    }

    /// Start the given Redis image and tag.
    pub async fn start_image(name: &str, tag: &str) -> Result<Self> {
        let container = GenericImage::new(name, tag)
            .with_exposed_port(6379.tcp())
            .with_wait_for(WaitFor::message_on_stdout("Ready to accept connections"))
            .start()
            .await?;
        let host = container.get_host().await?.to_string();
        let port = container.get_host_port_ipv4(6379).await?;
        Ok(Self {
            container,
            host,
            port,
        })
    }

    /// `redis://{host}:{port}`.
    pub fn url(&self) -> String {
        format!("redis://{}:{}", self.host, self.port)
    }

    /// The host the mapped port is reachable on.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The mapped host port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The underlying container, for pause/stop and other controls.
    pub fn container(&self) -> &ContainerAsync<GenericImage> {
        &self.container
    }
}
