//! The flexiai-backend conformance suite against real redis-server instances.

mod common;

// JSON (the default, Python-compatible format).
flexiai_backend::conformance_tests!(
    common::RedisFactory::start().expect("redis-server must start")
);

/// The same suite with MessagePack, which exercises the script's `cmsgpack` path.
mod msgpack {
    use super::common;

    flexiai_backend::conformance_tests!(
        common::RedisFactory::with_format(flexiai_serde::Format::MessagePack)
            .expect("redis-server must start")
    );
}
