"""An app whose output is hard to relay, then exits with code 3 before it listens.

Writes lines to stdout and stderr in turn (flushing each, so the order is the one written),
a line coloured as Kestrel colours its log, a line that is not UTF-8, and a last line on
stderr without a line ending.
"""
import sys

OUT = sys.stdout.buffer
ERR = sys.stderr.buffer


def write(stream, data):
    stream.write(data)
    stream.flush()


def main():
    for i in range(1, 6):
        write(OUT, b"out %d\n" % i)
        write(ERR, b"err %d\n" % i)
    write(OUT, b"\x1b[40m\x1b[32minfo\x1b[39m\x1b[22m\x1b[49m: Microsoft.Hosting.Lifetime[0]\n")
    write(ERR, b"not utf-8: \xff\xfe end\n")
    write(ERR, b"fatal: the last line")
    return 3


if __name__ == "__main__":
    sys.exit(main())
