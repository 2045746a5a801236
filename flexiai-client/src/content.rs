//! The parts of a conversation beyond plain text: multi-part content (text and images), tool
//! definitions, the model's tool calls, and the answer's requested format.

use serde::{Deserialize, Deserializer, Serialize};

/// One part of a message's content.
///
/// ```
/// use flexiai_client::{ContentPart, ImageSource, Message};
///
/// let message = Message::user_parts(vec![
///     ContentPart::text("What is in this picture?"),
///     ContentPart::image_url("https://example.com/cat.png"),
///     ContentPart::image_base64("image/png", "iVBORw0KGgo="),
/// ]);
/// assert_eq!(message.text(), "What is in this picture?");
/// assert!(matches!(message.content[1], ContentPart::Image(ImageSource::Url { .. })));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ContentPart {
    /// Text.
    Text {
        /// The text.
        text: String,
    },
    /// An image (OpenAI `image_url` parts, Anthropic `image` blocks).
    Image(ImageSource),
}

impl ContentPart {
    /// A text part.
    pub fn text(text: impl Into<String>) -> Self {
        ContentPart::Text { text: text.into() }
    }

    /// An image the provider fetches from `url`.
    pub fn image_url(url: impl Into<String>) -> Self {
        ContentPart::Image(ImageSource::Url { url: url.into() })
    }

    /// An image sent inline: `data` is the base64 text of a file of type `media_type`
    /// (`image/png`, `image/jpeg`...).
    pub fn image_base64(media_type: impl Into<String>, data: impl Into<String>) -> Self {
        ContentPart::Image(ImageSource::Base64 {
            media_type: media_type.into(),
            data: data.into(),
        })
    }
}

/// Where an image comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ImageSource {
    /// Fetched by the provider.
    Url {
        /// The image's URL.
        url: String,
    },
    /// Inline (OpenAI receives it as a `data:` URL).
    Base64 {
        /// Its MIME type.
        media_type: String,
        /// Its bytes, base64-encoded.
        data: String,
    },
}

/// A message's content as JSON gives it: a string, or a list of parts.
#[derive(Deserialize)]
#[serde(untagged)]
enum WireContent {
    Text(String),
    Parts(Vec<ContentPart>),
}

/// Reads `"content": "text"` as one text part, so plain chat JSON still parses.
pub(crate) fn deserialize_content<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<ContentPart>, D::Error> {
    Ok(match WireContent::deserialize(deserializer)? {
        WireContent::Text(text) => vec![ContentPart::Text { text }],
        WireContent::Parts(parts) => parts,
    })
}

/// A function the model may call.
///
/// ```
/// use flexiai_client::{ChatRequest, Message, Tool, ToolChoice};
///
/// let weather = Tool::new(
///     "get_weather",
///     serde_json::json!({"type": "object", "properties": {"city": {"type": "string"}}}),
/// )
/// .description("Current weather in a city");
/// let request = ChatRequest::new(vec![Message::user("Weather in Paris?")])
///     .tool(weather)
///     .tool_choice(ToolChoice::Auto);
/// assert_eq!(request.tools[0].name, "get_weather");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    /// The function's name.
    pub name: String,
    /// What it does, for the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Its arguments as a JSON Schema object (OpenAI `parameters`, Anthropic `input_schema`).
    pub parameters: serde_json::Value,
}

impl Tool {
    /// A tool named `name` taking arguments described by the JSON Schema `parameters`.
    pub fn new(name: impl Into<String>, parameters: serde_json::Value) -> Self {
        Self {
            name: name.into(),
            description: None,
            parameters,
        }
    }

    /// Sets the description.
    #[must_use]
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }
}

/// Whether and which tool the model must call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ToolChoice {
    /// The model decides (OpenAI `auto`, Anthropic `auto`).
    Auto,
    /// No tool call (OpenAI `none`, Anthropic `none`).
    None,
    /// Some tool must be called (OpenAI `required`, Anthropic `any`).
    Required,
    /// This tool must be called.
    Tool(String),
}

/// A tool call made by the model: in an answer ([`ChatResponse::tool_calls`]), and in the
/// assistant message that carries it back in the next request.
///
/// [`ChatResponse::tool_calls`]: crate::ChatResponse::tool_calls
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The provider's id of the call, which the tool result refers to.
    pub id: String,
    /// The function called.
    pub name: String,
    /// Its arguments, as JSON text (as OpenAI sends them; Anthropic's `input` object is
    /// serialized).
    pub arguments: String,
}

/// The format the answer must take.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ResponseFormat {
    /// Free text (the default).
    Text,
    /// Any JSON object (OpenAI `json_object`).
    JsonObject,
    /// JSON matching `schema` (OpenAI `json_schema`).
    JsonSchema {
        /// The schema's name.
        name: String,
        /// The JSON Schema.
        schema: serde_json::Value,
        /// Whether the provider must follow the schema exactly.
        #[serde(default)]
        strict: bool,
    },
}
