--[[ Store a batch of new jobs of one kind on one queue (`jobctl enqueue --from`, enqueue_many).
  Fresh ids only: an id already in use is an error, and the whole batch (one MULTI/EXEC) is then
  refused; so is a batch that would take the queue past max_size.
  Input:
    KEYS[1] the queue's list
    KEYS[2] 'rq:job:' prefix: the jobs' hashes
    KEYS[3] 'rq:queues' set of known queues
    ARGV[1] queue
    ARGV[2] now_iso
    ARGV[3] max_size (0: none)
    ARGV[4] 'jobctl:wake:' prefix of queues' wake channels
    ARGV[5] field_count
    ARGV[6...] field, value, ... (the fields every job shares), then for each job: id, data,
               description
  Output:
    stored the number of jobs stored
    {Refusal.FULL, jobs queued} the batch would take the queue past max_size
]]
--- @include "lib"
local queue, now_iso, max_size, field_count = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[5])
local k = {job = KEYS[2], wake = ARGV[4]}
local shared = {}
for i = 6, 5 + 2 * field_count do table.insert(shared, ARGV[i]) end
local first = 6 + 2 * field_count
local list = KEYS[1]
if max_size > 0 then
  local queued = redis.call('LLEN', list)
  if queued + (#ARGV - first + 1) / 3 > max_size then return {Refusal.FULL, queued} end
end
for i = first, #ARGV, 3 do
  if redis.call('EXISTS', job_key(k, ARGV[i])) == 1 then
    return redis.error_reply('job id ' .. ARGV[i] .. ' is already in use')
  end
end
local stored = 0
for i = first, #ARGV, 3 do
  local key = job_key(k, ARGV[i])
  redis.call('HSET', key, 'data', ARGV[i + 1], 'description', ARGV[i + 2], 'status', 'queued',
    'enqueued_at', now_iso, unpack(shared))
  wake(k, queue, redis.call('RPUSH', list, ARGV[i]))
  stored = stored + 1
end
redis.call('SADD', KEYS[3], list)
return stored
