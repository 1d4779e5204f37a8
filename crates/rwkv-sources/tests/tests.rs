//! Public-API tests of rwkv-sources against the committed fixtures (one test binary).

mod books;
mod code;
mod http;
mod robust;
mod util;
mod web;
