// The detached pvrun process that serves a daemonized QEMU's hint channel,
// started by runDaemonized (src/vm/daemon.ts), never by a user.
import {serveDaemon} from './daemon.js';

serveDaemon();
