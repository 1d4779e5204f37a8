//! The decode engine: one thread owns every forward pass of the server's generations.
//!
//! Requests arrive with a state and the tokens to read first (a grounded answer's context, a
//! chat prompt); the engine reads them a chunk at a time and then decodes every active request
//! together, one token per request per step through [`Model::decode_lanes`] (one set of matrix
//! products for all of them: the weights are read once per step, not once per answer). Each
//! lane's logits are those it would get alone, bit for bit, so an answer does not depend on
//! what else the server is doing. The requests still reading their prompts read them together
//! too ([`Model::forward_lanes`], all but each prompt's last token, which the decode step reads
//! for its logits); between two decode steps the reading takes one short chunk
//! ([`SHARED_CHUNK`] rows), so a long prompt delays the others' next token by one chunk at most.
//! A request whose receiver is gone (the client disconnected) is dropped at the next step.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use rwkv_heads::TextStream;
use rwkv_heads::sample::{Sampler, SamplerConfig};
use rwkv_model::tokenizer::Tokenizer;
use rwkv_model::{Lane as FoldLane, Model, State};
use tokio::sync::mpsc;

/// Tokens read per step, over all reading requests, while other requests are decoding (their
/// next token waits for it).
pub const SHARED_CHUNK: usize = 64;
/// Tokens read per step, over all reading requests, while none decodes.
pub const PREFILL_ROWS: usize = 1024;

/// One generation to run.
pub struct GenRequest {
    /// The state to continue from.
    pub state: State,
    /// Tokens to read before generating (at least one, unless `logits` is given).
    pub prefill: Vec<u32>,
    /// The logits to sample the first token from when `prefill` is empty.
    pub logits: Option<Vec<f32>>,
    /// Sampling.
    pub sampler: SamplerConfig,
    /// Most tokens to generate.
    pub max_tokens: usize,
    /// Texts that end the answer (besides the World end token).
    pub stops: Vec<String>,
    /// Ignore stops and the end token: always generate `max_tokens` (benchmarks).
    pub unstoppable: bool,
    /// Hand back the final state (everything read and generated folded in).
    pub return_state: bool,
    /// Where the text and the end go.
    pub events: mpsc::UnboundedSender<Event>,
}

/// What a generation reports.
#[derive(Debug)]
pub enum Event {
    /// Text, as it completes.
    Text(String),
    /// The end.
    Done(Box<Done>),
    /// The model failed.
    Failed(String),
}

/// How a generation ended.
#[derive(Debug, Clone)]
pub struct Done {
    /// `stop`, `end_token` or `max_tokens`.
    pub finish: &'static str,
    /// Tokens read before generating.
    pub prompt_tokens: usize,
    /// Tokens generated.
    pub completion_tokens: usize,
    /// Milliseconds waiting for the engine.
    pub queue_ms: f64,
    /// Milliseconds reading the prompt.
    pub read_ms: f64,
    /// Milliseconds from submission to the first text.
    pub first_token_ms: f64,
    /// Milliseconds generating.
    pub generate_ms: f64,
    /// The final state, when asked for.
    pub state: Option<State>,
}

/// The engine is full: the caller answers `429`.
#[derive(Debug, Clone, Copy)]
pub struct Busy;

/// A handle on the engine thread.
pub struct Engine {
    tx: std::sync::Mutex<std::sync::mpsc::Sender<GenRequest>>,
    load: Arc<AtomicUsize>,
    capacity: usize,
}

impl Engine {
    /// Start the engine thread for `model`; at most `capacity` generations are queued or
    /// running at once.
    pub fn start(model: &'static Model, tokenizer: Arc<dyn Tokenizer>, capacity: usize) -> Engine {
        let (tx, rx) = std::sync::mpsc::channel::<GenRequest>();
        let load = Arc::new(AtomicUsize::new(0));
        let l = load.clone();
        std::thread::Builder::new()
            .name("rwkv-engine".into())
            .spawn(move || run(model, tokenizer, rx, l))
            .expect("the engine thread starts");
        Engine {
            tx: std::sync::Mutex::new(tx),
            load,
            capacity: capacity.max(1),
        }
    }

    /// Queue a generation, or [`Busy`] when `capacity` are already queued or running.
    pub fn submit(&self, req: GenRequest) -> Result<(), Busy> {
        let prev = self.load.fetch_add(1, Ordering::SeqCst);
        if prev >= self.capacity {
            self.load.fetch_sub(1, Ordering::SeqCst);
            return Err(Busy);
        }
        let tx = self.tx.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if tx.send(req).is_err() {
            self.load.fetch_sub(1, Ordering::SeqCst);
            return Err(Busy);
        }
        Ok(())
    }

    /// Generations queued or running.
    pub fn load(&self) -> usize {
        self.load.load(Ordering::SeqCst)
    }

    /// The most generations queued or running at once.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

struct Lane {
    req: GenRequest,
    stream: TextStream,
    sampler: Sampler,
    /// Tokens of `prefill` read so far.
    read: usize,
    /// The token to feed next (decoding).
    next: u32,
    /// `next` is the prompt's last token (its logits end the reading).
    reading_last: bool,
    submitted: Instant,
    started: Option<Instant>,
    read_done: Option<Instant>,
    first_text: Option<Instant>,
}

impl Lane {
    fn new(req: GenRequest, tokenizer: &dyn Tokenizer) -> Lane {
        let stream = if req.unstoppable {
            TextStream::unstoppable()
        } else {
            let stops: Vec<&str> = req.stops.iter().map(String::as_str).collect();
            TextStream::with_stops(tokenizer, &stops)
        };
        Lane {
            sampler: Sampler::new(req.sampler),
            stream,
            req,
            read: 0,
            next: 0,
            reading_last: false,
            submitted: Instant::now(),
            started: None,
            read_done: None,
            first_text: None,
        }
    }

    fn send_text(&mut self, t: String) {
        if !t.is_empty() {
            self.first_text.get_or_insert_with(Instant::now);
            let _ = self.req.events.send(Event::Text(t));
        }
    }

    /// Sample from `logits`; `true` when the generation has ended.
    fn advance(&mut self, tokenizer: &dyn Tokenizer, logits: &[f32]) -> bool {
        if self.req.max_tokens == 0 {
            let t = self.stream.end();
            self.send_text(t);
            return true;
        }
        let tok = self.sampler.sample(logits);
        let t = self.stream.push(tokenizer, tok);
        self.send_text(t);
        self.next = tok;
        if self.stream.finished().is_some() {
            return true;
        }
        if self.stream.tokens() >= self.req.max_tokens {
            let t = self.stream.end();
            self.send_text(t);
            return true;
        }
        false
    }

    fn finish(mut self, model: &Model) {
        let finish = self.stream.finished().unwrap_or("max_tokens");
        let now = Instant::now();
        let ms = |a: Instant, b: Instant| b.saturating_duration_since(a).as_secs_f64() * 1e3;
        let started = self.started.unwrap_or(now);
        let read_done = self.read_done.unwrap_or(now);
        let state = if self.req.return_state {
            // The last token sampled at the limit is part of the text: fold it in too.
            if finish == "max_tokens" && self.stream.tokens() > 0 {
                let _ = model.forward_token(self.next, &mut self.req.state);
            }
            Some(std::mem::replace(
                &mut self.req.state,
                State {
                    layers: Vec::new(),
                    tokens: 0,
                },
            ))
        } else {
            None
        };
        let done = Done {
            finish,
            prompt_tokens: self.req.prefill.len(),
            completion_tokens: self.stream.tokens(),
            queue_ms: ms(self.submitted, started),
            read_ms: ms(started, read_done),
            first_token_ms: ms(self.submitted, self.first_text.unwrap_or(now)),
            generate_ms: ms(read_done, now),
            state,
        };
        let _ = self.req.events.send(Event::Done(Box::new(done)));
    }

    fn fail(self, msg: String) {
        let _ = self.req.events.send(Event::Failed(msg));
    }
}

fn run(
    model: &'static Model,
    tokenizer: Arc<dyn Tokenizer>,
    rx: std::sync::mpsc::Receiver<GenRequest>,
    load: Arc<AtomicUsize>,
) {
    let tok = tokenizer.as_ref();
    let vocab = model.config().vocab;
    let mut reading: VecDeque<Lane> = VecDeque::new();
    let mut decoding: Vec<Lane> = Vec::new();
    // A request leaves the load before its client hears that it ended, so a client that got
    // its answer never sees itself still counted.
    let release = |n: usize| {
        load.fetch_sub(n, Ordering::SeqCst);
    };
    loop {
        if reading.is_empty() && decoding.is_empty() {
            match rx.recv() {
                Ok(r) => reading.push_back(Lane::new(r, tok)),
                Err(_) => return,
            }
        }
        while let Ok(r) = rx.try_recv() {
            reading.push_back(Lane::new(r, tok));
        }
        // Requests whose client went away stop here.
        let before = reading.len() + decoding.len();
        reading.retain(|l| !l.req.events.is_closed());
        decoding.retain(|l| !l.req.events.is_closed());
        release(before - reading.len() - decoding.len());

        // The requests still reading read their next tokens together, in one set of products
        // per step (all but each prompt's last token: that one is read by the decode step,
        // which gives its logits). While others decode, the step is kept short.
        if !reading.is_empty() {
            let budget = if decoding.is_empty() {
                (model.chunk_len().max(1) * reading.len()).min(PREFILL_ROWS)
            } else {
                SHARED_CHUNK
            };
            let per_lane = (budget / reading.len()).max(1);
            let span = tracing::debug_span!(target: "rwkv::serve", "read_step", lanes = reading.len(), per_lane);
            let _e = span.enter();
            let now = Instant::now();
            let mut slices: Vec<(usize, usize)> = Vec::with_capacity(reading.len());
            for l in reading.iter_mut() {
                l.started.get_or_insert(now);
                let last = l.req.prefill.len().saturating_sub(1);
                let end = (l.read + per_lane).min(last);
                slices.push((l.read, end.max(l.read)));
            }
            let mut lanes: Vec<FoldLane<'_>> = reading
                .iter_mut()
                .zip(&slices)
                .map(|(l, &(a, b))| FoldLane {
                    tokens: &l.req.prefill[a..b],
                    state: &mut l.req.state,
                })
                .collect();
            let results = model.forward_lanes(&mut lanes);
            drop(lanes);
            let mut still = VecDeque::with_capacity(reading.len());
            for (i, (mut l, r)) in reading.drain(..).zip(results).enumerate() {
                let (_, b) = slices[i];
                if let Err(e) = r {
                    release(1);
                    l.fail(e.to_string());
                    continue;
                }
                l.read = b;
                if l.req.prefill.is_empty() {
                    // Nothing to read: start from the logits given.
                    match l.req.logits.take() {
                        Some(logits) => {
                            l.read_done = Some(Instant::now());
                            if l.advance(tok, &logits) {
                                release(1);
                                l.finish(model);
                            } else {
                                decoding.push(l);
                            }
                        }
                        None => {
                            release(1);
                            l.fail("nothing to read and no logits to start from".into());
                        }
                    }
                } else if l.read + 1 >= l.req.prefill.len() {
                    // The prompt's last token goes through the decode step.
                    l.next = l.req.prefill[l.req.prefill.len() - 1];
                    l.reading_last = true;
                    decoding.push(l);
                } else {
                    still.push_back(l);
                }
            }
            reading = still;
        }

        // One token for every decoding request, in one set of products.
        if !decoding.is_empty() {
            let span = tracing::debug_span!(target: "rwkv::serve", "decode_step", lanes = decoding.len());
            let _e = span.enter();
            let mut lanes: Vec<(u32, &mut State)> = decoding.iter_mut().map(|l| (l.next, &mut l.req.state)).collect();
            match model.decode_lanes(&mut lanes) {
                Err(e) => {
                    let msg = e.to_string();
                    release(decoding.len());
                    for l in decoding.drain(..) {
                        l.fail(msg.clone());
                    }
                }
                Ok(logits) => {
                    let mut ended = Vec::new();
                    let now = Instant::now();
                    for (i, l) in decoding.iter_mut().enumerate() {
                        if std::mem::take(&mut l.reading_last) {
                            l.read_done = Some(now);
                        }
                        if l.advance(tok, &logits[i * vocab..(i + 1) * vocab]) {
                            ended.push(i);
                        }
                    }
                    for &i in ended.iter().rev() {
                        release(1);
                        decoding.swap_remove(i).finish(model);
                    }
                }
            }
        }
    }
}
