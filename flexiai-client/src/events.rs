//! The typed events of a streamed chat completion, and [`StreamAccumulator`], which folds
//! them back into a [`ChatResponse`].

use std::pin::Pin;

use futures_util::Stream;
use serde::{Deserialize, Serialize};

use crate::content::ToolCall;
use crate::error::ProviderError;
use crate::types::{ChatResponse, FinishReason, Usage};

/// Most tool calls one answer may make; a stream announcing more is an invalid response.
/// Bounds what a stream can make the client hold.
pub const MAX_TOOL_CALLS: usize = 128;

/// One event of a streamed answer, the same for every provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum StreamEvent {
    /// More text.
    TextDelta {
        /// The new text.
        text: String,
    },
    /// A piece of a tool call: the first piece of a call carries its `id` and `name`, later
    /// ones more of its `arguments` (JSON text, cut anywhere).
    ToolCallDelta(ToolCallDelta),
    /// Token counts (OpenAI sends them last; Anthropic with its final `message_delta`).
    Usage(Usage),
    /// Why generation stopped.
    Finish {
        /// The reason.
        reason: FinishReason,
    },
}

/// A piece of a tool call in a stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCallDelta {
    /// Which call of the answer (from 0, below [`MAX_TOOL_CALLS`]).
    pub index: usize,
    /// The call's id, on its first piece.
    pub id: Option<String>,
    /// The function's name, on its first piece.
    pub name: Option<String>,
    /// More of the arguments' JSON text (may be empty).
    pub arguments: String,
}

/// A provider's stream of events, as [`Provider::chat_completion_stream`] returns it: it
/// ends after the answer's last event, or with one error (then nothing follows).
///
/// [`Provider::chat_completion_stream`]: crate::Provider::chat_completion_stream
pub type ProviderEventStream =
    Pin<Box<dyn Stream<Item = Result<StreamEvent, ProviderError>> + Send + 'static>>;

/// The events a whole answer amounts to: its text, its tool calls, its usage, its finish
/// reason. How a provider that cannot stream still serves a stream.
pub fn response_events(response: ChatResponse) -> Vec<StreamEvent> {
    let mut events = Vec::with_capacity(response.tool_calls.len() + 3);
    if !response.content.is_empty() {
        events.push(StreamEvent::TextDelta {
            text: response.content,
        });
    }
    for (index, call) in response.tool_calls.into_iter().enumerate() {
        events.push(StreamEvent::ToolCallDelta(ToolCallDelta {
            index,
            id: Some(call.id),
            name: Some(call.name),
            arguments: call.arguments,
        }));
    }
    events.push(StreamEvent::Usage(response.usage));
    events.push(StreamEvent::Finish {
        reason: response.finish_reason,
    });
    events
}

/// Folds stream events into the answer they make: text joined, tool-call pieces assembled
/// into [`ToolCall`]s by index, the last usage and finish reason kept.
///
/// ```
/// use flexiai_client::{FinishReason, StreamAccumulator, StreamEvent, ToolCallDelta};
///
/// let mut acc = StreamAccumulator::default();
/// acc.push(&StreamEvent::ToolCallDelta(ToolCallDelta {
///     index: 0, id: Some("call_1".into()), name: Some("get_weather".into()),
///     arguments: r#"{"city":"#.into(),
/// }));
/// acc.push(&StreamEvent::ToolCallDelta(ToolCallDelta {
///     index: 0, id: None, name: None, arguments: r#""Paris"}"#.into(),
/// }));
/// acc.push(&StreamEvent::Finish { reason: FinishReason::ToolCalls });
/// let answer = acc.into_response("openai", "gpt-4o");
/// assert_eq!(answer.tool_calls[0].arguments, r#"{"city":"Paris"}"#);
/// ```
#[derive(Debug, Clone, Default)]
pub struct StreamAccumulator {
    content: String,
    tool_calls: Vec<ToolCall>,
    usage: Usage,
    finish_reason: Option<FinishReason>,
}

impl StreamAccumulator {
    /// Adds one event. A tool-call piece with an index of [`MAX_TOOL_CALLS`] or more is
    /// dropped (the adapters reject such streams before they get here).
    pub fn push(&mut self, event: &StreamEvent) {
        match event {
            StreamEvent::TextDelta { text } => self.content.push_str(text),
            StreamEvent::ToolCallDelta(delta) => {
                if delta.index >= MAX_TOOL_CALLS {
                    return;
                }
                if delta.index >= self.tool_calls.len() {
                    self.tool_calls.resize_with(delta.index + 1, || ToolCall {
                        id: String::new(),
                        name: String::new(),
                        arguments: String::new(),
                    });
                }
                if let Some(call) = self.tool_calls.get_mut(delta.index) {
                    if let Some(id) = &delta.id {
                        call.id.clone_from(id);
                    }
                    if let Some(name) = &delta.name {
                        call.name.push_str(name);
                    }
                    call.arguments.push_str(&delta.arguments);
                }
            }
            StreamEvent::Usage(usage) => self.usage = *usage,
            StreamEvent::Finish { reason } => self.finish_reason = Some(reason.clone()),
        }
    }

    /// The text so far.
    pub fn content(&self) -> &str {
        &self.content
    }

    /// The answer, credited to `provider` and `model`.
    pub fn into_response(self, provider: &str, model: &str) -> ChatResponse {
        ChatResponse {
            content: self.content,
            tool_calls: self.tool_calls,
            model: model.to_owned(),
            provider: provider.to_owned(),
            usage: self.usage,
            finish_reason: self.finish_reason.unwrap_or(FinishReason::Unknown),
            id: None,
        }
    }
}
