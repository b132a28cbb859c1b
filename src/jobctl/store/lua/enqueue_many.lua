--[[ Store a batch of new jobs of one kind on one queue (`jobctl enqueue --from`, enqueue_many).
  Fresh ids only: an id already in use is an error, and the whole batch is then refused (one
  script: nothing of it is written); so is a batch that would take the queue past max_size.
  Input:
    KEYS[1] the queue's list (rq:queue:<queue>)
    KEYS[2] a hash the script makes and deletes: the fields the jobs share, which each record is
            copied from (keys.Layout.enqueue_template)
    KEYS[3] 'rq:job:' prefix: the jobs' hashes
    KEYS[4] 'rq:queues' set of known queues
    KEYS[5] 'jobctl:batch:' prefix: the hash and job set of the batch the jobs join (the shared
      fields' jobctl_batch)
    ARGV[1] queue
    ARGV[2] now in RQ's format (created_at, enqueued_at)
    ARGV[3] max_size (0: none)
    ARGV[4] the fields every job shares, as in enqueue.lua's record (a JSON array of strings name,
            value, ...: wire.raw_json)
    ARGV[5] ids, ARGV[6] descriptions, ARGV[7] payloads (`data`; bytes above 127 stand in the
            JSON text as they are, as in ARGV[4]): JSON arrays with an item per job
    ARGV[8] 'jobctl:wake:' prefix of queues' wake channels
  Output:
    stored the number of jobs stored
    {Refusal.FULL, jobs queued} the batch would take the queue past max_size
    {Refusal.UNKNOWN_BATCH, batch} the batch (api/batches.py) the jobs would join does not exist
    {Refusal.BATCH_COMPLETE, batch} it is complete
]]
--- @include "lib"
local list, template = KEYS[1], KEYS[2]
local k = {job = KEYS[3], queues = KEYS[4], batch = KEYS[5], wake = ARGV[8]}
local queue, now_iso, max_size = ARGV[1], ARGV[2], tonumber(ARGV[3])
local ids, descriptions, payloads = cjson.decode(ARGV[5]), cjson.decode(ARGV[6]), cjson.decode(ARGV[7])
if #ids == 0 then return 0 end
if max_size > 0 then
  local queued = redis.call('LLEN', list)
  if queued + #ids > max_size then return {Refusal.FULL, queued} end
end
-- one EXISTS for the batch (unpack takes a few thousand values: producer.BATCH_SIZE is below)
local job_keys = {}
for i, id in ipairs(ids) do job_keys[i] = job_key(k, id) end
if redis.call('EXISTS', unpack(job_keys)) > 0 then
  for i, id in ipairs(ids) do
    if redis.call('EXISTS', job_keys[i]) == 1 then return redis.error_reply('job id ' .. id .. ' is already in use') end
  end
end
local record = cjson.decode(ARGV[4])
local n = #record
local batch
for i = 1, n, 2 do
  if record[i] == 'jobctl_batch' then batch = record[i + 1] end
end
if batch and not CLUSTER then  -- on a cluster the producer joined it on its own slot (join_batch.lua)
  local state = batch_state(k, batch)
  if not state[1] then return {Refusal.UNKNOWN_BATCH, batch} end
  if state[2] == '1' then return {Refusal.BATCH_COMPLETE, batch} end
  batch_joined(k, batch, ids)
end
record[n + 1], record[n + 2], record[n + 3], record[n + 4] = 'created_at', now_iso, 'enqueued_at', now_iso
record[n + 5], record[n + 6] = 'status', 'queued'
redis.call('DEL', template)  -- left by a call that failed halfway (out of memory)
redis.call('HSET', template, unpack(record))
for i, key in ipairs(job_keys) do
  redis.call('COPY', template, key)
  redis.call('HSET', key, 'data', payloads[i], 'description', descriptions[i])
end
redis.call('DEL', template)
wake(k, queue, redis.call('RPUSH', list, unpack(ids)) - #ids + 1)  -- the length after the first
known_queue(k, list)
return #ids
