"""Suite-wide set-up shared by every test directory (each distribution's tests and tests/).

A shell starts background jobs (`make test &`, `nohup`, some CI runners) with SIGINT ignored, and
an ignored signal stays ignored across fork and exec: the consumers and CLI commands the tests
start would then ignore the Ctrl-C the tests send them. Installing Python's own handler here
means every child starts with SIGINT at its default, as it does from a terminal.
"""

import signal

if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
