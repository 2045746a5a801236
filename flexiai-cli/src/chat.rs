//! `flexiai chat`: one prompt through a config file's providers, streamed, with the failover
//! shown: for trying a config against real or local OpenAI-compatible servers.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use flexiai_client::{
    ChatRequest, ClientError, FlexiAI, FlexiAIConfig, Message, StreamAccumulator, StreamEvent,
};
use futures_util::StreamExt;

/// Arguments of `flexiai chat`.
#[derive(Debug, Args)]
pub(crate) struct ChatArgs {
    /// The config file: TOML as `FlexiAIConfig` (or JSON for a `.json` file); `FLEXIAI_*`
    /// variables apply, so keys can stay out of it.
    #[arg(long)]
    config: PathBuf,
    /// Ask for this model: the providers serving it, then its `model_fallbacks` chain.
    #[arg(long)]
    model: Option<String>,
    /// A system message sent before the prompt.
    #[arg(long)]
    system: Option<String>,
    /// Most tokens to generate.
    #[arg(long)]
    max_tokens: Option<u32>,
    /// The prompt.
    prompt: String,
}

/// Streams the answer to stdout as it arrives; the report (who answered, who was skipped or
/// failed before) goes to stderr, so stdout is the answer alone.
pub(crate) async fn run(args: ChatArgs) -> crate::Result<()> {
    let config = FlexiAIConfig::load(&args.config)?;
    let client = FlexiAI::new(config).await?;
    let result = chat(&client, &args).await;
    client.close().await?;
    result
}

async fn chat(client: &FlexiAI, args: &ChatArgs) -> crate::Result<()> {
    let mut messages = Vec::new();
    if let Some(system) = &args.system {
        messages.push(Message::system(system.as_str()));
    }
    messages.push(Message::user(args.prompt.as_str()));
    let mut request = ChatRequest::new(messages);
    request.model.clone_from(&args.model);
    request.max_tokens = args.max_tokens;

    let mut stream = match client.chat_completion_stream(&request).await {
        Ok(stream) => stream,
        Err(error) => {
            for attempt in error.attempts() {
                eprintln!("failed: {attempt}");
            }
            return Err(match error {
                ClientError::AllProvidersFailed { .. } => "every provider failed".into(),
                other => other.into(),
            });
        }
    };
    let mut stdout = std::io::stdout().lock();
    let mut answer = StreamAccumulator::default();
    let mut broke = None;
    while let Some(event) = stream.next().await {
        match event {
            Ok(event) => {
                if let StreamEvent::TextDelta { text } = &event {
                    stdout.write_all(text.as_bytes())?;
                    stdout.flush()?;
                }
                answer.push(&event);
            }
            Err(error) => broke = Some(error),
        }
    }
    writeln!(stdout)?;
    drop(stdout);
    for attempt in stream.attempts() {
        eprintln!("failed: {attempt}");
    }
    let (provider, model) = (stream.provider().to_owned(), stream.model().to_owned());
    let response = answer.into_response(&provider, &model);
    for call in &response.tool_calls {
        eprintln!("tool call: {} {}({})", call.id, call.name, call.arguments);
    }
    eprintln!(
        "answered by {provider} ({model}): finish {}, {} prompt + {} completion tokens",
        response.finish_reason, response.usage.prompt_tokens, response.usage.completion_tokens
    );
    match broke {
        Some(error) => Err(error.into()),
        None => Ok(()),
    }
}
