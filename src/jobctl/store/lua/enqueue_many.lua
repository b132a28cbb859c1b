-- Store a batch of new jobs of one kind on one queue (`jobctl enqueue --from`, enqueue_many).
-- ARGV: queue, now_iso, max_size (0: none), field_count, field, value, ... (the fields every job
-- shares), then for each job: id, data, description. Fresh ids only: an id already in use is an
-- error, and the whole batch (one MULTI/EXEC) is then refused; so is a batch that would take the
-- queue past max_size. Returns the number stored, or {'full', jobs queued}.
local queue, now_iso, max_size, field_count = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local shared = {}
for i = 5, 4 + 2 * field_count do table.insert(shared, ARGV[i]) end
local first = 5 + 2 * field_count
local list = queue_key(queue)
if max_size > 0 then
  local queued = redis.call('LLEN', list)
  if queued + (#ARGV - first + 1) / 3 > max_size then return {'full', queued} end
end
for i = first, #ARGV, 3 do
  if redis.call('EXISTS', job_key(ARGV[i])) == 1 then
    return redis.error_reply('job id ' .. ARGV[i] .. ' is already in use')
  end
end
local stored = 0
for i = first, #ARGV, 3 do
  local key = job_key(ARGV[i])
  redis.call('HSET', key, 'data', ARGV[i + 1], 'description', ARGV[i + 2], 'status', 'queued',
    'enqueued_at', now_iso, unpack(shared))
  wake(queue, redis.call('RPUSH', list, ARGV[i]))
  stored = stored + 1
end
redis.call('SADD', QUEUES, list)
return stored
