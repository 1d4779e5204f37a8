//! Prompt templates and the generation loop shared by every head.

use std::ops::ControlFlow;
use std::time::Instant;

use crate::sample::{Sampler, SamplerConfig};
use rwkv_model::tokenizer::{StreamDecoder, Tokenizer};
use rwkv_model::{Logits, Model, State};

use crate::Result;

/// How a question is put to the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Template {
    /// RWKV World/G1 chat format: `User: {q}\n\nAssistant:`, ends at a blank line.
    Chat,
    /// Base-model completion: `Question: {q}\nAnswer:`, ends at a blank line.
    Plain,
    /// The RWKV-7 G1 chat models: `User: {q}\n\nAssistant:` with the question cleaned (line
    /// ends normalised, runs of blank lines collapsed: a blank line ends a turn), and their
    /// thinking switch: off sends `Assistant: <think>\n</think>` (an empty thought, then the
    /// answer), on opens `Assistant: <think>` and lets the model think first. Ends at a blank
    /// line (with thinking on, at the next `User:` turn) or the end token.
    G1 {
        /// Whether the model thinks before answering.
        think: bool,
    },
    /// Custom: `{q}` is replaced by the question; generation ends at `stop`.
    Custom {
        /// The prompt with a `{q}` placeholder.
        prompt: String,
        /// The end marker.
        stop: String,
    },
}

impl Template {
    /// The default for a tokenizer: chat for World models, plain for byte-level base models.
    pub fn for_tokenizer(tokenizer: &dyn Tokenizer) -> Self {
        if tokenizer.id() == "world" {
            Template::Chat
        } else {
            Template::Plain
        }
    }

    /// The template for a model: G1 for World-vocabulary models whose checkpoint says it is a G1
    /// model (`g1` in its file name or metadata), chat for other World models, plain for
    /// byte-level and other base models.
    pub fn for_model(tokenizer: &dyn Tokenizer, file_name: &str, metadata: &[&str], think: bool) -> Self {
        let g1 = |s: &str| {
            let s = s.to_ascii_lowercase();
            s.split(|c: char| !c.is_ascii_alphanumeric())
                .any(|w| w.starts_with("g1") && !w[2..].starts_with(|c: char| c.is_ascii_digit()))
        };
        if tokenizer.id() == "world" && (g1(file_name) || metadata.iter().any(|m| g1(m))) {
            Template::G1 { think }
        } else {
            Self::for_tokenizer(tokenizer)
        }
    }

    /// The prompt asking `q`.
    pub fn prompt(&self, q: &str) -> String {
        match self {
            Template::G1 { think } => {
                let open = if *think { " <think>" } else { " <think>\n</think>" };
                format!("User: {}\n\nAssistant:{open}", clean_user_text(q))
            }
            Template::Chat => format!("User: {q}\n\nAssistant:"),
            Template::Plain => format!("Question: {q}\nAnswer:"),
            Template::Custom { prompt, .. } => prompt.replace("{q}", q),
        }
    }

    /// The text that ends the answer.
    pub fn stop(&self) -> &str {
        match self {
            Template::Chat | Template::Plain | Template::G1 { think: false } => "\n\n",
            Template::G1 { think: true } => "\n\nUser:",
            Template::Custom { stop, .. } => stop,
        }
    }
}

/// The user's text as the G1 chat format wants it: `\r\n` as `\n`, trimmed, and every run of
/// blank lines collapsed into one line break (a blank line would end the turn).
pub fn clean_user_text(q: &str) -> String {
    let q = q.replace("\r\n", "\n").replace('\r', "\n");
    let mut out = String::with_capacity(q.len());
    for line in q.trim().lines() {
        let line = line.trim_end();
        if line.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(line);
    }
    out
}

/// What a generation produced.
#[derive(Debug, Clone, Default)]
pub struct Generation {
    /// The text (stop marker excluded).
    pub text: String,
    /// Tokens generated.
    pub tokens: usize,
    /// Milliseconds from the start of generation to the first emitted text.
    pub first_token_ms: f64,
    /// Milliseconds generating.
    pub generate_ms: f64,
    /// Why it ended: `stop`, `max_tokens`, `end_token` or `cancelled`.
    pub finish: &'static str,
}

/// Sampled tokens to the text of an answer: decodes them as they come (never half a UTF-8
/// character), drops whitespace before the answer, and ends at the stop text or the World end
/// token (id 0), never emitting the stop text or what could still grow into it. Shared by
/// [`generate`] and by callers that sample many answers at once (a server's batched decode).
#[derive(Debug)]
pub struct TextStream {
    stops: Vec<String>,
    end_token: Option<u32>,
    dec: StreamDecoder,
    /// Text decoded but not yet emitted because it could be the start of the stop marker.
    held: String,
    emitted: bool,
    finish: Option<&'static str>,
    tokens: usize,
}

impl TextStream {
    /// A stream ending at `stop` (empty: never) and, for World-vocabulary models, at token 0.
    pub fn new(tokenizer: &dyn Tokenizer, stop: &str) -> Self {
        Self::with_stops(tokenizer, &[stop])
    }

    /// A stream ending at the first of `stops` to appear (empty ones are ignored) and, for
    /// World-vocabulary models, at token 0.
    pub fn with_stops(tokenizer: &dyn Tokenizer, stops: &[&str]) -> Self {
        TextStream {
            stops: stops.iter().filter(|s| !s.is_empty()).map(|s| s.to_string()).collect(),
            end_token: (tokenizer.id() == "world").then_some(0),
            dec: StreamDecoder::new(),
            held: String::new(),
            emitted: false,
            finish: None,
            tokens: 0,
        }
    }

    /// A stream that ends only at its token limit (no stop text, no end token): benchmarks that
    /// want every answer the same length.
    pub fn unstoppable() -> Self {
        TextStream {
            stops: Vec::new(),
            end_token: None,
            dec: StreamDecoder::new(),
            held: String::new(),
            emitted: false,
            finish: None,
            tokens: 0,
        }
    }

    /// Feed one sampled token; returns the text now ready to show (often empty). Afterwards
    /// [`TextStream::finished`] says whether the answer ended with it (the token is then not
    /// to be fed to the model).
    pub fn push(&mut self, tokenizer: &dyn Tokenizer, tok: u32) -> String {
        if self.finish.is_some() {
            return String::new();
        }
        self.tokens += 1;
        if Some(tok) == self.end_token {
            self.finish = Some("end_token");
            return self.drain_all();
        }
        self.held.push_str(&self.dec.push(tokenizer, tok));
        if !self.emitted {
            // Whitespace before the answer proper is not the end marker.
            let trimmed = self.held.trim_start().len();
            self.held.drain(..self.held.len() - trimmed);
        }
        if let Some(i) = self.first_stop() {
            self.held.truncate(i);
            self.finish = Some("stop");
            return self.drain_all();
        }
        // Emit all but a tail that could still grow into a stop marker.
        let held = &self.held;
        let keep = self
            .stops
            .iter()
            .map(|stop| {
                (1..stop.len())
                    .rev()
                    .find(|&n| {
                        n <= held.len()
                            && held.is_char_boundary(held.len() - n)
                            && stop.starts_with(&held[held.len() - n..])
                    })
                    .unwrap_or(0)
            })
            .max()
            .unwrap_or(0);
        let emit: String = self.held.drain(..self.held.len() - keep).collect();
        self.emitted |= !emit.is_empty();
        emit
    }

    /// Where the earliest stop marker starts in the held text.
    fn first_stop(&self) -> Option<usize> {
        self.stops.iter().filter_map(|s| self.held.find(s.as_str())).min()
    }

    fn drain_all(&mut self) -> String {
        let t = std::mem::take(&mut self.held);
        self.emitted |= !t.is_empty();
        t
    }

    /// Why the answer ended, once it has (`stop` or `end_token`).
    pub fn finished(&self) -> Option<&'static str> {
        self.finish
    }

    /// Tokens fed so far.
    pub fn tokens(&self) -> usize {
        self.tokens
    }

    /// End at the token limit: the text still held (the decoder's last bytes, any stop text
    /// cut), to show last. Marks the stream finished with `max_tokens` if nothing ended it.
    pub fn end(&mut self) -> String {
        if self.finish.is_none() {
            self.finish = Some("max_tokens");
            self.held.push_str(&self.dec.finish());
            if let Some(i) = self.first_stop() {
                self.held.truncate(i);
            }
        }
        self.drain_all()
    }
}

/// Generate from `state` after `logits` until the stop text, the end token (id 0 for World
/// models), `max_tokens`, or `on_text` breaks. Text is streamed as it completes (never half a
/// UTF-8 character) and never includes the stop marker.
#[allow(clippy::too_many_arguments)]
pub fn generate(
    model: &Model,
    tokenizer: &dyn Tokenizer,
    state: &mut State,
    mut logits: Vec<f32>,
    cfg: &SamplerConfig,
    max_tokens: usize,
    stop: &str,
    on_text: &mut dyn FnMut(&str) -> ControlFlow<()>,
) -> Result<Generation> {
    let start = Instant::now();
    let mut sampler = Sampler::new(*cfg);
    let mut stream = TextStream::new(tokenizer, stop);
    let mut out = Generation::default();
    let mut first = None;
    let mut emit = |out: &mut Generation, first: &mut Option<f64>, t: &str| -> ControlFlow<()> {
        if t.is_empty() {
            return ControlFlow::Continue(());
        }
        first.get_or_insert_with(|| start.elapsed().as_secs_f64() * 1e3);
        out.text.push_str(t);
        on_text(t)
    };
    for _ in 0..max_tokens {
        let tok = sampler.sample(&logits);
        let t = stream.push(tokenizer, tok);
        if emit(&mut out, &mut first, &t).is_break() {
            out.tokens = stream.tokens();
            out.finish = "cancelled";
            return Ok(finish(out, start, first));
        }
        if stream.finished().is_some() {
            break;
        }
        logits = model.forward_token(tok, state)?;
    }
    let t = stream.end();
    let _ = emit(&mut out, &mut first, &t);
    out.tokens = stream.tokens();
    out.finish = stream.finished().unwrap_or("max_tokens");
    Ok(finish(out, start, first))
}

fn finish(mut g: Generation, start: Instant, first: Option<f64>) -> Generation {
    g.generate_ms = start.elapsed().as_secs_f64() * 1e3;
    g.first_token_ms = first.unwrap_or(g.generate_ms);
    g
}

/// Fold `text` into `state`, returning the logits after it.
pub fn read(model: &Model, tokenizer: &dyn Tokenizer, state: &mut State, text: &str) -> Result<Vec<f32>> {
    let toks = tokenizer.encode(text);
    Ok(model.forward_seq(&toks, state, Logits::Last)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rwkv_model::tokenizer::BytesTokenizer;

    /// Feed text through a byte-level stream one byte a token.
    fn run(stream: &mut TextStream, text: &str) -> (String, Option<&'static str>) {
        let mut out = String::new();
        for b in text.bytes() {
            out.push_str(&stream.push(&BytesTokenizer, b as u32));
            if stream.finished().is_some() {
                return (out, stream.finished());
            }
        }
        out.push_str(&stream.end());
        (out, stream.finished())
    }

    #[test]
    fn text_stream_ends_at_the_first_stop_and_never_shows_it() {
        let mut s = TextStream::with_stops(&BytesTokenizer, &["\n\n", "END", ""]);
        assert_eq!(
            run(&mut s, "  answer E is here END more"),
            ("answer E is here ".into(), Some("stop"))
        );
        let mut s = TextStream::with_stops(&BytesTokenizer, &["\n\n"]);
        assert_eq!(run(&mut s, "one\ntwo\n\nthree"), ("one\ntwo".into(), Some("stop")));
        // Text that only starts like a stop is shown at the end.
        let mut s = TextStream::with_stops(&BytesTokenizer, &["END"]);
        assert_eq!(run(&mut s, "the EN"), ("the EN".into(), Some("max_tokens")));
        let mut s = TextStream::unstoppable();
        assert_eq!(run(&mut s, "a\n\nb"), ("a\n\nb".into(), Some("max_tokens")));
        assert_eq!(s.tokens(), 4);
    }

    #[test]
    fn g1_prompts_clean_the_question_and_switch_thinking() {
        let off = Template::G1 { think: false };
        assert_eq!(
            off.prompt("  What is X?\r\n\r\n\n  and Y  \n"),
            "User: What is X?\n  and Y\n\nAssistant: <think>\n</think>"
        );
        assert_eq!(off.stop(), "\n\n");
        let on = Template::G1 { think: true };
        assert_eq!(on.prompt("q"), "User: q\n\nAssistant: <think>");
        assert_eq!(on.stop(), "\n\nUser:");
    }

    #[test]
    fn base_models_keep_the_plain_template() {
        let t = Template::for_model(&BytesTokenizer, "rwkv7-g1a-0.4b.pth", &[], false);
        assert_eq!(
            t,
            Template::Plain,
            "a byte-level model is a base model whatever its name"
        );
        let world = rwkv_model::tokenizer::WorldTokenizer::embedded();
        assert_eq!(
            Template::for_model(world, "rwkv7-g1a-0.4b-20250905-ctx4096.pth", &[], true),
            Template::G1 { think: true }
        );
        assert_eq!(
            Template::for_model(world, "rwkv7-g1a3-1.5b.pth", &[], false),
            Template::G1 { think: false }
        );
        assert_eq!(
            Template::for_model(world, "model.pth", &["RWKV-7 G1 2.9B"], false),
            Template::G1 { think: false }
        );
        assert_eq!(
            Template::for_model(world, "RWKV-x070-World-1.5B.pth", &["g10x"], false),
            Template::Chat
        );
    }
}
