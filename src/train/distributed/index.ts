// Data-parallel training's process group: the Collective contract, a single process, MPI ranks, the
// environment's group and the local launcher (vera train --nproc).

export {
  type Collective,
  type ReduceOp,
  SingleProcess,
  allGatherJson,
  allReduceViewSum,
  broadcastNumber,
  shardRange,
} from './collective.js';
export { MpiCollective, mpiAddonPath, mpiUnavailable } from './mpi.js';
export { type WorldEnv, processGroup, worldFromEnv } from './world.js';
export { type LaunchOptions, launchRanks, mpirunArgs } from './launch.js';
export { NcclCollective, joinNccl } from './nccl.js';
export { exchangeId } from './rendezvous.js';
export { type SpawnOptions, freePort, rankEnv, spawnRanks } from './spawn-ranks.js';
