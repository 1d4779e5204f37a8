"""The official MCP Python SDK (1.x) against rwkv-serve: over stdio (launching
`rwkv-serve --mcp stdio`) and over streamable HTTP. Lists the tools, calls search and ask.
Usage: mcp_client.py stdio RWKV_SERVE STORE | mcp_client.py http URL. Prints one JSON line."""
import asyncio
import json
import sys

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamablehttp_client


async def exercise(session):
    await session.initialize()
    tools = await session.list_tools()
    names = sorted(t.name for t in tools.tools)
    for want in ["ask", "list_documents", "read_file", "search", "summarize"]:
        assert want in names, names
    r = await session.call_tool("search", {"question": "What does fold_planned do?"})
    assert not r.isError, r
    text = "".join(c.text for c in r.content if getattr(c, "text", None))
    assert "lib.rs:" in text, text
    a = await session.call_tool("ask", {"question": "What does fold_planned do?"})
    assert not a.isError, a
    atext = "".join(c.text for c in a.content if getattr(c, "text", None))
    assert "lib.rs" in atext, atext
    bad = await session.call_tool("search", {"question": "eval", "store": "no-such-store"})
    assert bad.isError, bad
    return {"tools": names, "search_chars": len(text), "ask_chars": len(atext)}


async def main():
    mode = sys.argv[1]
    if mode == "stdio":
        params = StdioServerParameters(command=sys.argv[2], args=["--mcp", "stdio", "--store", sys.argv[3]])
        async with stdio_client(params) as (r, w):
            async with ClientSession(r, w) as session:
                out = await exercise(session)
    else:
        async with streamablehttp_client(sys.argv[2]) as (r, w, _):
            async with ClientSession(r, w) as session:
                out = await exercise(session)
    print(json.dumps(out))


asyncio.run(main())
