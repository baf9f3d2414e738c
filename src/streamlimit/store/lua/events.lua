-- events: the user's audit trail, newest first.
-- reply: {json, ...}
return redis.call('LRANGE', EVENTS, 0, -1)
