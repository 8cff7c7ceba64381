//! THE I/O boundary: spawn, time, randomness, files, sockets.
