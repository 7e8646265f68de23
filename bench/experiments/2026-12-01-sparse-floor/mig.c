#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>
static volatile int stop;
static volatile pid_t btid;
static int spin_mode;
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec*1e6+t.tv_nsec/1e3;}
static void pin(pid_t t,int c){cpu_set_t s;CPU_ZERO(&s);CPU_SET(c,&s);sched_setaffinity(t,sizeof s,&s);}
static void*busy(void*a){(void)a;btid=syscall(SYS_gettid);while(!stop);return 0;}
static void*idlespin(void*a){(void)a;pin(0,0);struct sched_param p={0};sched_setscheduler(0,SCHED_IDLE,&p);while(!stop);return 0;}
static int cmp(const void*a,const void*b){double x=*(double*)a,y=*(double*)b;return x<y?-1:x>y;}
int main(int argc,char**argv){
  spin_mode=argc>1?atoi(argv[1]):0; int n=argc>2?atoi(argv[2]):2000; int gap=argc>3?atoi(argv[3]):5000;
  pin(0,0);
  pthread_t b,s; pthread_create(&b,0,busy,0); if(spin_mode)pthread_create(&s,0,idlespin,0);
  struct sched_param fp={1}; if(sched_setscheduler(0,SCHED_FIFO,&fp))perror("fifo");
  while(!btid);
  double *v=malloc(n*sizeof *v);
  for(int i=0;i<n;i++){
    pin(btid,1); usleep(gap);           /* B running on CPU 1 */
    double t0=now(); pin(btid,0); v[i]=now()-t0;   /* B must leave CPU 1 */
  }
  stop=1; qsort(v,n,sizeof *v,cmp);
  printf("mode=%d n=%d p50=%.1f p90=%.1f p99=%.1f max=%.1f us\n",spin_mode,n,v[n/2],v[n*9/10],v[n*99/100],v[n-1]);
  return 0;}
