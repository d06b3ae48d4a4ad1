"""Reading what clients write back: raw email in, a recorded answer out.

``strip`` removes quoted history and signatures, ``autoreply`` recognises out-of-office and other automatic mail,
``intent`` classifies the remaining text, ``match`` finds the owner, client and thread it belongs to, and
``pipeline`` ties them together and records the answer through ``workflows.answers.record_answer``. Every entry
point (SendGrid Inbound Parse in ``web.inbound``, the IMAP poller in ``replies.imap``, ``reagenda reply explain``)
feeds the same ``pipeline``. To add a new source: turn what it receives into raw RFC 5322 bytes and call
``pipeline.process_raw``.
"""
