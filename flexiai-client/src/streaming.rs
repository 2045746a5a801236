//! Streamed chat completions: [`FlexiAI::chat_completion_stream`] fails over and retries
//! only until a provider delivers its first event, then hands the caller a [`ChatStream`]
//! that ends with the answer or with a typed error.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use futures_util::{Stream, StreamExt};
use tracing::warn;

use crate::client::{FlexiAI, Slot};
use crate::error::{Attempt, ClientError, ProviderError};
use crate::events::{ProviderEventStream, StreamAccumulator, StreamEvent};
use crate::stats::bump;
use crate::types::{ChatRequest, ChatResponse};

/// What the client's stream generator yields: first how the failover ended, then events.
enum Step {
    /// A provider delivered its first event; the failover is over.
    Ready {
        provider: String,
        model: String,
        attempts: Vec<Attempt>,
        first: StreamEvent,
    },
    Event(StreamEvent),
    /// The end: no provider delivered a first event, or the stream broke off.
    Failed(ClientError),
}

type Steps = Pin<Box<dyn Stream<Item = Step> + Send>>;

/// A streamed answer, from [`FlexiAI::chat_completion_stream`]: a [`Stream`] of
/// [`StreamEvent`]s from the provider that answered.
///
/// It ends after the answer's last event, or with one `Err` —
/// [`ClientError::Interrupted`] — when the provider broke off (error event, cut connection,
/// a stall longer than its `timeout_ms`, a body ending before the answer's end); it never
/// ends cleanly on a cut answer. Dropping it cancels the request: the provider's breaker
/// counts neither success nor failure (a half-open trial slot is given back).
pub struct ChatStream {
    steps: Steps,
    first: Option<StreamEvent>,
    provider: String,
    model: String,
    attempts: Vec<Attempt>,
    done: bool,
}

impl std::fmt::Debug for ChatStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatStream")
            .field("provider", &self.provider)
            .field("model", &self.model)
            .field("attempts", &self.attempts)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl ChatStream {
    /// The configured name of the provider answering.
    pub fn provider(&self) -> &str {
        &self.provider
    }

    /// The model answering (the provider's default, or the one routed to).
    pub fn model(&self) -> &str {
        &self.model
    }

    /// The tries before this provider answered: providers skipped by their breaker and
    /// calls that failed before their first event (empty when the first try answered).
    pub fn attempts(&self) -> &[Attempt] {
        &self.attempts
    }

    /// The next event, `None` at the end (the same as [`StreamExt::next`]).
    pub async fn next_event(&mut self) -> Option<Result<StreamEvent, ClientError>> {
        self.next().await
    }

    /// Reads the rest of the stream into one answer (tool calls assembled).
    pub async fn into_response(mut self) -> Result<ChatResponse, ClientError> {
        let mut acc = StreamAccumulator::default();
        while let Some(event) = self.next().await {
            acc.push(&event?);
        }
        Ok(acc.into_response(&self.provider, &self.model))
    }
}

impl Stream for ChatStream {
    type Item = Result<StreamEvent, ClientError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(first) = self.first.take() {
            return Poll::Ready(Some(Ok(first)));
        }
        if self.done {
            return Poll::Ready(None);
        }
        match self.steps.as_mut().poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Step::Event(event))) => Poll::Ready(Some(Ok(event))),
            Poll::Ready(Some(Step::Failed(error))) => {
                self.done = true;
                Poll::Ready(Some(Err(error)))
            }
            // `Ready` only comes first, and is consumed by `chat_completion_stream`.
            Poll::Ready(Some(Step::Ready { .. })) | Poll::Ready(None) => {
                self.done = true;
                Poll::Ready(None)
            }
        }
    }
}

/// Opens a provider's stream and waits for its first event.
async fn first_event(
    slot: &Slot,
    request: &ChatRequest,
) -> Result<(ProviderEventStream, StreamEvent), ProviderError> {
    let mut events = slot.provider.chat_completion_stream(request).await?;
    match events.next().await {
        Some(Ok(first)) => Ok((events, first)),
        Some(Err(error)) => Err(error),
        None => Err(ProviderError::InvalidResponse {
            message: "the stream ended without an event".into(),
        }),
    }
}

impl FlexiAI {
    /// Sends `request` for a streamed answer, through the same providers, breakers and
    /// retries as [`chat_completion`](Self::chat_completion), and returns once a provider
    /// has delivered the first event.
    ///
    /// - Failover and retries happen only before the first event. Each try has the
    ///   provider's `first_token_timeout_ms` (default: its `timeout_ms`) to deliver one;
    ///   running out is a [`ProviderError::Timeout`], which the breaker counts as a failure,
    ///   and the next try or provider is taken.
    /// - After it, an error or cut ends the stream with [`ClientError::Interrupted`],
    ///   charged to the provider and not retried; so does a wait of more than `timeout_ms`
    ///   for the next event. A stream read to its end is a success.
    /// - Dropping the [`ChatStream`] settles the breaker's permit without counting anything.
    ///
    /// Fails like `chat_completion` when no provider delivers a first event
    /// ([`ClientError::AllProvidersFailed`] lists the tries).
    ///
    /// ```no_run
    /// use futures_util::StreamExt;
    /// use flexiai_client::{ChatRequest, FlexiAI, Message, StreamEvent};
    ///
    /// # async fn run(client: FlexiAI) -> Result<(), flexiai_client::ClientError> {
    /// let mut stream = client
    ///     .chat_completion_stream(&ChatRequest::new(vec![Message::user("Tell a story")]))
    ///     .await?;
    /// println!("answering: {} ({})", stream.provider(), stream.model());
    /// while let Some(event) = stream.next().await {
    ///     if let StreamEvent::TextDelta { text } = event? {
    ///         print!("{text}");
    ///     }
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn chat_completion_stream(
        &self,
        request: &ChatRequest,
    ) -> Result<ChatStream, ClientError> {
        self.check_open()?;
        let plan = self.plan(request)?;
        let mut steps = self.steps(plan, request.clone());
        match steps.next().await {
            Some(Step::Ready {
                provider,
                model,
                attempts,
                first,
            }) => Ok(ChatStream {
                steps,
                first: Some(first),
                provider,
                model,
                attempts,
                done: false,
            }),
            Some(Step::Failed(error)) => Err(error),
            Some(Step::Event(_)) | None => Err(ClientError::AllProvidersFailed {
                attempts: Vec::new(),
            }),
        }
    }

    /// The generator behind a [`ChatStream`]. It owns a clone of the client, so the permit
    /// of the answering slot lives inside it: dropped with it, settled when it ends.
    fn steps(&self, plan: Vec<usize>, request: ChatRequest) -> Steps {
        let client = self.clone();
        Box::pin(async_stream::stream! {
            let inner = &*client.inner;
            bump(&inner.counters.requests);
            let mut attempts = Vec::new();
            for (position, &index) in plan.iter().enumerate() {
                let slot = &inner.slots[index];
                let routed = slot.request(&request);
                let budget = slot.config.first_token_timeout_duration();
                let idle = slot.config.timeout_duration();
                for n in 1..=slot.attempts {
                    let Some(permit) = client.admit(slot, n, &mut attempts) else {
                        break;
                    };
                    let started = Instant::now();
                    let opened = match tokio::time::timeout(budget, first_event(slot, &routed)).await {
                        Ok(opened) => opened,
                        Err(_) => Err(ProviderError::Timeout { elapsed: budget }),
                    };
                    let (mut events, first) = match opened {
                        Ok(opened) => opened,
                        Err(error) => {
                            let elapsed = started.elapsed();
                            slot.counters.add_latency(elapsed);
                            match client.failed(slot, n, permit, error, elapsed, &mut attempts) {
                                Some(delay) => {
                                    tokio::time::sleep(delay).await;
                                    continue;
                                }
                                None => break,
                            }
                        }
                    };
                    if position > 0 {
                        bump(&inner.counters.failovers);
                    }
                    yield Step::Ready {
                        provider: slot.config.name.clone(),
                        model: slot.model.clone(),
                        attempts: std::mem::take(&mut attempts),
                        first,
                    };
                    let error = loop {
                        match tokio::time::timeout(idle, events.next()).await {
                            Ok(Some(Ok(event))) => yield Step::Event(event),
                            Ok(Some(Err(error))) => break error,
                            Ok(None) => {
                                slot.counters.add_latency(started.elapsed());
                                permit.success();
                                bump(&slot.counters.successes);
                                bump(&inner.counters.successes);
                                return;
                            }
                            Err(_) => break ProviderError::Timeout { elapsed: idle },
                        }
                    };
                    slot.counters.add_latency(started.elapsed());
                    client.charge(slot, permit, &error);
                    bump(&inner.counters.failures);
                    warn!(provider = %slot.name(), kind = error.kind(), error = %error, "stream broke off");
                    yield Step::Failed(ClientError::Interrupted {
                        provider: slot.config.name.clone(),
                        model: slot.model.clone(),
                        source: error,
                    });
                    return;
                }
            }
            bump(&inner.counters.failures);
            warn!(tries = attempts.len(), "every provider failed or was skipped");
            yield Step::Failed(ClientError::AllProvidersFailed { attempts });
        })
    }
}
