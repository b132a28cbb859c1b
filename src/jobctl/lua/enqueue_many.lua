-- Store a batch of new jobs of one kind on one queue (`jobctl enqueue --from`, enqueue_many).
-- KEYS[1] the queue's list (rq:queue:<queue>).
-- ARGV[1] queue, ARGV[2] now in RQ's format (created_at, enqueued_at), ARGV[3] max_size (0: none),
-- ARGV[4] the fields every job shares, as enqueue.lua's ARGV[9] (a JSON array of strings name,
-- value, ...), then for each job: ARGV[i] id, ARGV[i + 1] data, ARGV[i + 2] description.
-- Fresh ids only: an id already in use is an error, and the whole batch is then refused (one
-- script: nothing of it is written); so is a batch that would take the queue past max_size.
-- Replies: the number stored | {'full', jobs queued}.
local list = KEYS[1]
local queue, now_iso, max_size = ARGV[1], ARGV[2], tonumber(ARGV[3])
local first = 5
if max_size > 0 then
  local queued = redis.call('LLEN', list)
  if queued + (#ARGV - first + 1) / 3 > max_size then return {'full', queued} end
end
for i = first, #ARGV, 3 do
  if redis.call('EXISTS', job_key(ARGV[i])) == 1 then
    return redis.error_reply('job id ' .. ARGV[i] .. ' is already in use')
  end
end
local record = cjson.decode(ARGV[4])
local n = #record
record[n + 1], record[n + 2], record[n + 3], record[n + 4] = 'created_at', now_iso, 'enqueued_at', now_iso
record[n + 5], record[n + 6] = 'status', 'queued'
local ids = {}
for i = first, #ARGV, 3 do
  record[n + 7], record[n + 8], record[n + 9], record[n + 10] = 'data', ARGV[i + 1], 'description', ARGV[i + 2]
  redis.call('HSET', job_key(ARGV[i]), unpack(record))
  ids[#ids + 1] = ARGV[i]
end
if #ids == 0 then return 0 end
-- one RPUSH for the batch (unpack takes a few thousand values: producer.BATCH_SIZE is below)
wake(queue, redis.call('RPUSH', list, unpack(ids)) - #ids + 1)  -- the length after the first
redis.call('SADD', QUEUES, list)
return #ids
