// The helper process that serves a VM's hint channel while the pvrun that
// started it runs on as QEMU; started by startHelper (src/vm/helper.ts), never by a user.
import {serveHelper} from './helper.js';

serveHelper();
