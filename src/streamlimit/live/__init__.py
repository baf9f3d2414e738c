"""Live channels: a Server-Sent Events stream per playing stream. While it is open the worker
renews the stream's lease itself (in batches, see ``renewer``) and pushes the end of the stream
(evicted, replaced, stopped, lost) the moment the store publishes it (``hub``)."""
