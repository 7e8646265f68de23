#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>
static volatile int stop; static volatile pid_t btid; static volatile int bsleep;
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec*1e6+t.tv_nsec/1e3;}
static void pin(pid_t t,int c){cpu_set_t s;CPU_ZERO(&s);if(c<0){CPU_SET(0,&s);CPU_SET(1,&s);}else CPU_SET(c,&s);sched_setaffinity(t,sizeof s,&s);}
static void*busy(void*a){(void)a;btid=syscall(SYS_gettid);while(!stop){if(bsleep)usleep(100000);}return 0;}
static int cmp(const void*a,const void*b){double x=*(double*)a,y=*(double*)b;return x<y?-1:x>y;}
static void report(const char*name,double*v,int n){qsort(v,n,8,cmp);printf("%-40s p50=%5.1f p90=%5.1f p99=%5.1f\n",name,v[n/2],v[n*9/10],v[n*99/100]);}
int main(void){int n=500;double*v=malloc(n*8);
 pin(0,0);pthread_t b;pthread_create(&b,0,busy,0);while(!btid);
 struct sched_param fp={1};sched_setscheduler(0,SCHED_FIFO,&fp);
 /* case 1: B queued on CPU0 behind us (we are FIFO on CPU0), CPU1 idle: move B to CPU1 */
 for(int i=0;i<n;i++){pin(btid,0);usleep(3000);/* B runs on CPU0 while we sleep; we wake & preempt it */ double t=now();pin(btid,1);v[i]=now()-t;}
 report("queued B cpu0 -> idle cpu1",v,n);
 /* case 2: B sleeping (bsleep), move between cpus */
 bsleep=1;usleep(200000);
 for(int i=0;i<n;i++){usleep(3000);double t=now();pin(btid,i&1);v[i]=now()-t;}
 report("sleeping B move",v,n);
 /* case 3: B queued on CPU0, move to mask {0,1} (widen) */
 bsleep=0;usleep(200000);
 for(int i=0;i<n;i++){pin(btid,0);usleep(3000);double t=now();pin(btid,-1);v[i]=now()-t;}
 report("queued B widen",v,n);
 stop=1;return 0;}
