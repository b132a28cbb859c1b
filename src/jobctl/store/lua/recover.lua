-- Give back what a gone worker held (see recover_worker in lib.lua).
-- ARGV: worker, now, now_iso, cause ('crash'|'shutdown'), crash_limit, how, culprit job id...
-- Returns {requeued, buried}.
local culprits = {}
for i = 7, #ARGV do table.insert(culprits, ARGV[i]) end
return recover_worker(ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4], tonumber(ARGV[5]), ARGV[6], culprits)
