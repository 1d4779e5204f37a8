//! The GPT-NeoX-20B tokenizer: ids agree with the `tokenizers` crate's own encoding, text in
//! many scripts round-trips byte for byte, and so does input that is not UTF-8 (but for the
//! bytes UTF-8 never uses).

use std::collections::BTreeMap;
use std::path::PathBuf;

use rwkv_tokenizers::{HfTokenizer, KnownTokenizer, StreamDecoder, Tokenizer};

fn json_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("vocab/20B_tokenizer.json")
}

/// The `tokenizers` crate on its own, loading the same file.
fn hf() -> tokenizers::Tokenizer {
    tokenizers::Tokenizer::from_file(json_path()).unwrap()
}

const MIXED: &str = "The quick brown fox — «ça va?» Grüße aus Köln! Привет, мир. Γειά σου κόσμε. \
    مرحبا بالعالم. שלום עולם. 你好，世界。こんにちは世界、カタカナ。안녕하세요 세계. नमस्ते दुनिया. \
    สวัสดีชาวโลก. Emoji: 😀👍🏽👨‍👩‍👧‍👦🇯🇵 ✓ ∑∫√π ≠ ≤.\n\
    fn main() {\n\tlet x = vec![1, 2, 3];        // eight spaces\n    println!(\"{x:?}\");\n}\n\n\n\
    Numbers: 3.14159, 1e-5, 0x6767_6d66, 2024-11-27. Tabs\t\tand  double  spaces.\r\n";

#[test]
fn mixed_script_text_round_trips_and_matches_the_tokenizers_crate() {
    let ours = HfTokenizer::neox_20b().unwrap();
    assert_eq!(ours.id(), "20b");
    assert_eq!(ours.vocab_size(), 50277);
    let ids = ours.encode(MIXED);
    let theirs = hf().encode(MIXED, false).unwrap().get_ids().to_vec();
    assert_eq!(ids, theirs);
    assert_eq!(ours.decode_bytes(&ids), MIXED.as_bytes());
    assert_eq!(ours.decode(&ids), hf().decode(&ids, false).unwrap());
    // Streaming never emits half a character and ends with the whole text.
    let mut d = StreamDecoder::new();
    let pieces: Vec<String> = ids.iter().map(|&i| d.push(&ours, i)).collect();
    assert!(pieces.iter().all(|p| !p.contains('\u{FFFD}')));
    assert_eq!(pieces.concat() + &d.finish(), MIXED);
}

#[test]
fn known_ids() {
    let t = HfTokenizer::neox_20b_shared();
    assert_eq!(t.encode("Hello world"), [12092, 1533]);
    assert_eq!(t.token_bytes(1533), Some(&b" world"[..]));
    // Special tokens have no bytes; the space-run tokens are their spaces.
    assert_eq!(t.token_bytes(0), None);
    assert_eq!(t.token_bytes(1), None);
    assert_eq!(t.token_bytes(50276), Some(&b"  "[..]));
    assert_eq!(t.token_bytes(50254), Some(&[b' '; 24][..]));
    assert_eq!(t.token_bytes(50277), None);
    // Text naming the end-of-text token becomes it, as in the tokenizers crate.
    assert_eq!(
        t.encode("a<|endoftext|>b"),
        hf().encode("a<|endoftext|>b", false).unwrap().get_ids()
    );
}

#[test]
fn every_token_decodes_like_the_tokenizers_crate() {
    let t = HfTokenizer::neox_20b_shared();
    let hf = hf();
    for id in 2..t.vocab_size() as u32 {
        let ours = String::from_utf8_lossy(t.token_bytes(id).unwrap()).into_owned();
        let theirs = hf.decode(&[id], false).unwrap();
        // A token ending inside a UTF-8 sequence decodes lossily in both, possibly with a
        // different number of replacement characters.
        if !ours.contains('\u{FFFD}') {
            assert_eq!(ours, theirs, "token {id}");
        }
    }
}

#[test]
fn long_input_is_encoded_in_pieces_with_the_same_ids() {
    let t = HfTokenizer::neox_20b_shared();
    let mut text = String::new();
    let mut i = 0;
    while text.len() < 300_000 {
        let words: Vec<&str> = MIXED.split(' ').collect();
        text.push_str(&format!(
            "Line {i}: {}\n",
            words[..words.len() / (1 + i % 5)].join(" ").trim_end()
        ));
        if i % 7 == 0 {
            text.push_str("        indented\n\n   \n");
        }
        i += 1;
    }
    let ids = t.encode(&text);
    assert_eq!(ids, hf().encode(text.as_str(), false).unwrap().get_ids());
    assert_eq!(t.decode_bytes(&ids), text.as_bytes());
}

#[test]
fn bytes_that_are_not_utf8_round_trip() {
    let t = HfTokenizer::neox_20b_shared();
    for bytes in [
        &b"abc\x80def"[..],
        b"caf\xc3",
        b"\xe2\x82 euro \x80\xbf",
        b"ok \xf0\x9f\x98\x80 \xf0\x9f\x98",
        b"\xc3\xc3\xa9",
        b"",
    ] {
        let ids = t.encode_bytes(bytes);
        assert_eq!(t.decode_bytes(&ids), bytes, "{bytes:?}");
    }
    // Bytes that never occur in UTF-8 have no token in NeoX's vocabulary: U+FFFD.
    let ids = t.encode_bytes(b"a\xffb\xc0");
    assert_eq!(t.decode(&ids), "a\u{FFFD}b\u{FFFD}");
}

#[test]
fn the_checkpoint_chooses_the_tokenizer() {
    let none = BTreeMap::new();
    assert_eq!(KnownTokenizer::for_model(256, &none), Some(KnownTokenizer::Bytes));
    assert_eq!(KnownTokenizer::for_model(50277, &none), Some(KnownTokenizer::Neox20B));
    assert_eq!(KnownTokenizer::for_model(50304, &none), Some(KnownTokenizer::Neox20B));
    assert_eq!(KnownTokenizer::for_model(65536, &none), Some(KnownTokenizer::World));
    assert_eq!(KnownTokenizer::for_model(1000, &none), None);
    let meta = BTreeMap::from([("tokenizer".to_string(), "rwkv_vocab_v20230424".to_string())]);
    assert_eq!(KnownTokenizer::for_model(50304, &meta), Some(KnownTokenizer::World));
    let meta = BTreeMap::from([("vocab".to_string(), "bytes-256".to_string())]);
    assert_eq!(KnownTokenizer::for_model(256, &meta), Some(KnownTokenizer::Bytes));
    assert_eq!(KnownTokenizer::from_name("20B"), Some(KnownTokenizer::Neox20B));
    assert_eq!(KnownTokenizer::from_name("klingon"), None);
    assert_eq!(KnownTokenizer::Neox20B.load().unwrap().id(), "20b");
}

#[test]
fn a_tokenizer_file_is_named_by_its_content() {
    let t = HfTokenizer::from_file(&json_path()).unwrap();
    assert!(t.id().starts_with("hf-") && t.id().len() == 19, "{}", t.id());
    assert_eq!(t.encode(MIXED), HfTokenizer::neox_20b_shared().encode(MIXED));
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("tokenizer.json");
    std::fs::write(&bad, "{\"not\": \"a tokenizer\"}").unwrap();
    let e = HfTokenizer::from_file(&bad).unwrap_err().to_string();
    assert!(e.contains("tokenizer.json"), "{e}");
}
