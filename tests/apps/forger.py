"""An app whose output tries to drive the terminal and forge lines, as a client whose input an
app logs could make it print, then a line of 100,000 bytes; then it exits with code 3 before it
listens.
"""
import sys

OUT = sys.stdout.buffer


def main():
    OUT.write(b"\x1b[32mgreen\x1b[0m kept\n")
    OUT.write(b"clipboard\x1b]52;c;cm0gLXJmIH4=\x07 write\n")
    OUT.write(b"title\x1b]0;pwned\x1b\\ set\n")
    OUT.write(b"cursor\x1b[2A\x1b[2K moves\n")
    OUT.write(b"GET /login user=alice ok\r[ancm] forged line\n")
    OUT.write(b"long " + b"y" * 100000 + b" end\n")
    OUT.write(b"last line\n")
    OUT.flush()
    return 3


if __name__ == "__main__":
    sys.exit(main())
