"""A small IMAP4rev1 server for tests: enough of RFC 3501 for a poller (CAPABILITY, LOGIN, SELECT, UID SEARCH
UNSEEN, UID FETCH BODY.PEEK[], UID STORE +FLAGS, NOOP, LOGOUT), over plain TCP on 127.0.0.1 port 0, with literal
``{n}`` syntax for message bodies exactly as real servers send it. Python's ``imaplib`` talks to it unchanged.
"""
from __future__ import annotations

import shlex
import socketserver
import threading
from dataclasses import dataclass, field


@dataclass
class Mailbox:
    user: str
    password: str
    messages: dict[int, bytes] = field(default_factory=dict)
    flags: dict[int, set[str]] = field(default_factory=dict)
    logins: int = 0

    def add(self, raw: bytes) -> int:
        uid = max(self.messages, default=0) + 1
        self.messages[uid] = raw
        self.flags[uid] = set()
        return uid


def _unquote(token: str) -> str:
    if len(token) >= 2 and token[0] == token[-1] == '"':
        return token[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return token


class _Handler(socketserver.StreamRequestHandler):
    box: Mailbox

    def send(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self) -> None:
        box = self.server.box  # type: ignore[attr-defined]
        self.send("* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] fake IMAP ready")
        authed = False
        while True:
            line = self.rfile.readline()
            if not line:
                return
            try:
                parts = [_unquote(p) for p in shlex.split(line.decode().strip(), posix=False)]
            except ValueError:
                self.send("* BAD parse error")
                continue
            if len(parts) < 2:
                self.send("* BAD missing command")
                continue
            tag, cmd, args = parts[0], parts[1].upper(), parts[2:]
            if cmd == "CAPABILITY":
                self.send("* CAPABILITY IMAP4rev1 AUTH=PLAIN")
                self.send(f"{tag} OK CAPABILITY completed")
            elif cmd == "LOGIN":
                if args[:2] == [box.user, box.password]:
                    authed = True
                    box.logins += 1
                    self.send(f"{tag} OK LOGIN completed")
                else:
                    self.send(f"{tag} NO [AUTHENTICATIONFAILED] Invalid credentials")
            elif cmd == "LOGOUT":
                self.send("* BYE logging out")
                self.send(f"{tag} OK LOGOUT completed")
                return
            elif cmd == "NOOP":
                self.send(f"{tag} OK NOOP completed")
            elif not authed:
                self.send(f"{tag} BAD not authenticated")
            elif cmd == "SELECT":
                if args and args[0].upper() == "INBOX":
                    self.send(f"* {len(box.messages)} EXISTS")
                    self.send("* FLAGS (\\Seen \\Flagged \\Answered \\Deleted \\Draft)")
                    self.send(f"{tag} OK [READ-WRITE] SELECT completed")
                else:
                    self.send(f"{tag} NO [NONEXISTENT] no such mailbox")
            elif cmd == "UID" and args:
                self.uid(tag, args[0].upper(), args[1:], box)
            else:
                self.send(f"{tag} BAD unsupported command {cmd}")

    def uid(self, tag: str, sub: str, args: list[str], box: Mailbox) -> None:
        if sub == "SEARCH":
            unseen = [str(u) for u in sorted(box.messages) if "\\Seen" not in box.flags[u]]
            self.send("* SEARCH" + ("".join(" " + u for u in unseen)))
            self.send(f"{tag} OK SEARCH completed")
        elif sub == "FETCH":
            uid = int(args[0])
            raw = box.messages.get(uid)
            if raw is not None:
                seq = sorted(box.messages).index(uid) + 1
                self.wfile.write(f"* {seq} FETCH (UID {uid} BODY[] {{{len(raw)}}}\r\n".encode() + raw + b")\r\n")
            self.send(f"{tag} OK FETCH completed")
        elif sub == "STORE":
            uid = int(args[0])
            flags = " ".join(args[2:]).strip("()").split()
            if uid in box.flags:
                box.flags[uid].update(flags)
                seq = sorted(box.messages).index(uid) + 1
                self.send(f"* {seq} FETCH (UID {uid} FLAGS ({' '.join(sorted(box.flags[uid]))}))")
            self.send(f"{tag} OK STORE completed")
        else:
            self.send(f"{tag} BAD unsupported UID command")


class RunningIMAP:
    def __init__(self, user: str, password: str) -> None:
        self.box = Mailbox(user, password)
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.server.box = self.box  # type: ignore[attr-defined]
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "RunningIMAP":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
