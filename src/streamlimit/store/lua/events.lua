-- events: the user's audit trail, newest first (JSON strings).
return redis.call('LRANGE', KEYS[5], 0, -1)
