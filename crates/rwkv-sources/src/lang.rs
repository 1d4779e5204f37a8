//! Language names for code files, from the file name or extension (as repomix and GitHub's
//! linguist name them), so readers and prompts can say what a file is.

use std::path::Path;

/// The language of the file at `path`, if its name or extension is known.
pub fn language_of(path: &Path) -> Option<&'static str> {
    let name = path.file_name()?.to_str()?;
    let lower = name.to_ascii_lowercase();
    let by_name = match lower.as_str() {
        "makefile" | "gnumakefile" => Some("Makefile"),
        "dockerfile" | "containerfile" => Some("Dockerfile"),
        "cmakelists.txt" => Some("CMake"),
        "cargo.lock" | "pipfile.lock" => Some("TOML"),
        "gemfile" | "rakefile" | "podfile" | "vagrantfile" => Some("Ruby"),
        "justfile" => Some("Just"),
        "build" | "build.bazel" | "workspace" => Some("Starlark"),
        ".gitignore" | ".ignore" | ".dockerignore" | ".gitattributes" => Some("Ignore List"),
        ".bashrc" | ".bash_profile" | ".profile" | ".zshrc" => Some("Shell"),
        "license" | "licence" | "copying" | "authors" | "notice" => Some("Text"),
        _ => None,
    };
    if by_name.is_some() {
        return by_name;
    }
    if lower.starts_with("dockerfile.") {
        return Some("Dockerfile");
    }
    let ext = lower.rsplit_once('.')?.1;
    Some(match ext {
        "rs" => "Rust",
        "py" | "pyi" | "pyw" => "Python",
        "ipynb" => "Jupyter Notebook",
        "js" | "mjs" | "cjs" => "JavaScript",
        "jsx" => "JSX",
        "ts" | "mts" | "cts" => "TypeScript",
        "tsx" => "TSX",
        "go" => "Go",
        "java" => "Java",
        "kt" | "kts" => "Kotlin",
        "scala" | "sc" => "Scala",
        "groovy" | "gradle" => "Groovy",
        "c" => "C",
        "h" => "C/C++ Header",
        "cc" | "cpp" | "cxx" | "c++" | "hpp" | "hh" | "hxx" | "inl" | "ipp" => "C++",
        "cu" | "cuh" => "CUDA",
        "m" => "Objective-C",
        "mm" => "Objective-C++",
        "cs" => "C#",
        "fs" | "fsi" | "fsx" => "F#",
        "vb" => "Visual Basic",
        "swift" => "Swift",
        "rb" | "rake" | "gemspec" => "Ruby",
        "php" => "PHP",
        "pl" | "pm" | "t" => "Perl",
        "lua" => "Lua",
        "r" => "R",
        "jl" => "Julia",
        "hs" | "lhs" => "Haskell",
        "ml" | "mli" => "OCaml",
        "ex" | "exs" => "Elixir",
        "erl" | "hrl" => "Erlang",
        "clj" | "cljs" | "cljc" | "edn" => "Clojure",
        "lisp" | "lsp" | "cl" => "Common Lisp",
        "el" => "Emacs Lisp",
        "scm" | "ss" | "rkt" => "Scheme",
        "dart" => "Dart",
        "zig" => "Zig",
        "nim" => "Nim",
        "v" | "sv" | "svh" => "Verilog",
        "vhd" | "vhdl" => "VHDL",
        "sol" => "Solidity",
        "asm" | "s" => "Assembly",
        "sh" | "bash" | "zsh" | "ksh" => "Shell",
        "fish" => "Fish",
        "ps1" | "psm1" => "PowerShell",
        "bat" | "cmd" => "Batch",
        "sql" => "SQL",
        "graphql" | "gql" => "GraphQL",
        "proto" => "Protocol Buffers",
        "thrift" => "Thrift",
        "html" | "htm" | "xhtml" => "HTML",
        "css" => "CSS",
        "scss" | "sass" => "SCSS",
        "less" => "Less",
        "vue" => "Vue",
        "svelte" => "Svelte",
        "astro" => "Astro",
        "xml" | "xsd" | "xsl" | "xslt" | "plist" | "csproj" | "fsproj" | "props" => "XML",
        "svg" => "SVG",
        "json" | "jsonc" | "json5" => "JSON",
        "jsonl" | "ndjson" => "JSON Lines",
        "yaml" | "yml" => "YAML",
        "toml" => "TOML",
        "ini" | "cfg" | "conf" | "properties" => "INI",
        "env" => "Dotenv",
        "md" | "markdown" | "mdx" => "Markdown",
        "rst" => "reStructuredText",
        "adoc" | "asciidoc" => "AsciiDoc",
        "org" => "Org",
        "tex" | "sty" | "cls" => "TeX",
        "bib" => "BibTeX",
        "txt" | "text" => "Text",
        "csv" => "CSV",
        "tsv" => "TSV",
        "cmake" => "CMake",
        "mk" | "mak" => "Makefile",
        "nix" => "Nix",
        "tf" | "tfvars" | "hcl" => "HCL",
        "dockerfile" => "Dockerfile",
        "bzl" | "star" => "Starlark",
        "wgsl" => "WGSL",
        "glsl" | "vert" | "frag" | "comp" => "GLSL",
        "hlsl" => "HLSL",
        "metal" => "Metal",
        "pyx" | "pxd" => "Cython",
        "ll" => "LLVM IR",
        "wat" | "wast" => "WebAssembly Text",
        "diff" | "patch" => "Diff",
        "lock" => "Lockfile",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_extensions() {
        assert_eq!(language_of(Path::new("src/main.rs")), Some("Rust"));
        assert_eq!(language_of(Path::new("a/Makefile")), Some("Makefile"));
        assert_eq!(language_of(Path::new("Dockerfile.dev")), Some("Dockerfile"));
        assert_eq!(language_of(Path::new("x.TSX")), Some("TSX"));
        assert_eq!(language_of(Path::new("noext")), None);
    }
}
