-- Store a batch of new jobs of one kind on one queue (`jobctl enqueue --from`, enqueue_many).
-- ARGV: queue, now_iso, field_count, field, value, ... (the fields every job shares), then for
-- each job: id, data, description. Fresh ids only: an id already in use is an error, and
-- the whole batch (one MULTI/EXEC) is then refused. Returns the number stored.
local queue, now_iso, field_count = ARGV[1], ARGV[2], tonumber(ARGV[3])
local shared = {}
for i = 4, 3 + 2 * field_count do table.insert(shared, ARGV[i]) end
local first = 4 + 2 * field_count
for i = first, #ARGV, 3 do
  if redis.call('EXISTS', job_key(ARGV[i])) == 1 then
    return redis.error_reply('job id ' .. ARGV[i] .. ' is already in use')
  end
end
local queue_key = 'rq:queue:' .. queue
local stored = 0
for i = first, #ARGV, 3 do
  local key = job_key(ARGV[i])
  redis.call('HSET', key, 'data', ARGV[i + 1], 'description', ARGV[i + 2], 'status', 'queued',
    'enqueued_at', now_iso, unpack(shared))
  wake(queue, redis.call('RPUSH', queue_key, ARGV[i]))
  stored = stored + 1
end
redis.call('SADD', 'rq:queues', queue_key)
return stored
