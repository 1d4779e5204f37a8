//! The World tokenizer against the official `TRIE_TOKENIZER`'s output.

use rwkv_tokenizers::{StreamDecoder, Tokenizer, WorldTokenizer};
use serde::Deserialize;

#[derive(Deserialize)]
struct Cases {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    text: String,
    ids: Vec<u32>,
}

fn check_file(json: &str, expected_cases: usize) {
    let cases: Cases = serde_json::from_str(json).expect("valid test vectors");
    assert_eq!(cases.cases.len(), expected_cases);
    let t = WorldTokenizer::embedded();
    for (i, case) in cases.cases.iter().enumerate() {
        let ids = t.encode(&case.text);
        assert_eq!(ids, case.ids, "case {i}: {:?}", case.text);
        assert_eq!(t.decode(&ids), case.text, "case {i} does not decode back");
    }
}

#[test]
fn official_cases() {
    check_file(
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../fixtures/vocab/world_tokenizer_cases.json"
        )),
        8,
    );
}

#[test]
fn official_cases_more() {
    check_file(
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../fixtures/vocab/world_tokenizer_cases_more.json"
        )),
        274,
    );
}

#[test]
fn new_matches_embedded() {
    let a = WorldTokenizer::new().unwrap();
    let b = WorldTokenizer::embedded();
    let text = "fn main() { println!(\"héllo, 世界 🦀\"); }\n";
    assert_eq!(a.encode(text), b.encode(text));
    assert!(std::ptr::eq(b, WorldTokenizer::embedded()));
}

#[test]
fn end_token_decodes_to_nothing() {
    let t = WorldTokenizer::embedded();
    let mut ids = t.encode("ab");
    ids.push(0);
    ids.extend(t.encode("cd"));
    assert_eq!(t.decode(&ids), "abcd");
}

#[test]
fn stream_decoder_over_world_tokens() {
    let t = WorldTokenizer::embedded();
    let text = "Mixed: English, Русский, Ελληνικά, العربية, עברית, हिन्दी, 日本語のテキスト, \
                한국어, ไทย, emoji 😀👩‍👩‍👧‍👦🏳️‍🌈🦀, math ∑∫√, zero-width\u{200b}joiner, end.\n";
    let ids = t.encode(text);
    let mut d = StreamDecoder::new();
    let mut out = String::new();
    for &id in &ids {
        let piece = d.push(t, id);
        assert!(!piece.contains('\u{FFFD}'), "U+FFFD emitted for token {id}");
        out.push_str(&piece);
    }
    assert_eq!(d.finish(), "");
    assert_eq!(out, text);

    // Byte-level tokens split multi-byte characters; the decoder must still be exact.
    let bytes_ids: Vec<u32> = text.bytes().map(|b| b as u32 + 1).collect();
    let mut d = StreamDecoder::new();
    let pieces: Vec<String> = bytes_ids.iter().map(|&id| d.push(t, id)).collect();
    assert!(pieces.iter().all(|p| !p.contains('\u{FFFD}')));
    assert_eq!(pieces.concat(), text);
}

#[test]
fn encodes_arbitrary_bytes() {
    let t = WorldTokenizer::embedded();
    let bytes: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    let ids = t.encode_bytes(&bytes);
    assert_eq!(t.decode_bytes(&ids), bytes);
    assert!(ids.iter().all(|&id| id > 0 && (id as usize) < t.vocab_size()));
}
