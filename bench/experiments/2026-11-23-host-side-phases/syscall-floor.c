#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>
static volatile int stop;
static pid_t tids[2];
static void *spin(void *a){ long i=(long)a; tids[i]=syscall(SYS_gettid); int busy = getenv("IDLE")==NULL; while(!stop){ if(!busy) usleep(50); } return 0;}
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec*1e6+t.tv_nsec/1e3;}
static void pin(pid_t t,int a,int b){cpu_set_t s;CPU_ZERO(&s);if(a>=0)CPU_SET(a,&s);if(b>=0)CPU_SET(b,&s);if(sched_setaffinity(t,sizeof s,&s))perror("aff");}
static int cmp(const void*a,const void*b){double x=*(double*)a,y=*(double*)b;return x<y?-1:x>y;}
int main(int argc,char**argv){
  int n=argc>1?atoi(argv[1]):1000; int fifo=getenv("NOFIFO")==NULL;
  pthread_t p[2]; for(long i=0;i<2;i++) pthread_create(&p[i],0,spin,(void*)i);
  usleep(100000);
  pin(0,0,-1);
  if(fifo){struct sched_param sp={.sched_priority=1}; if(sched_setscheduler(0,SCHED_FIFO,&sp))perror("fifo");}
  double *pv=malloc(n*sizeof(double)),*rv=malloc(n*sizeof(double));
  for(int i=0;i<n;i++){
    double t0=now(); pin(tids[1],1,-1); pin(tids[0],0,-1); pv[i]=now()-t0;
    usleep(1000);
    t0=now(); pin(tids[1],0,1); pin(tids[0],0,1); rv[i]=now()-t0;
    usleep(1000);
  }
  stop=1;
  qsort(pv,n,8,cmp);qsort(rv,n,8,cmp);
  printf("pin   p50 %.1f p90 %.1f p99 %.1f max %.1f\n",pv[n/2],pv[n*9/10],pv[n*99/100],pv[n-1]);
  printf("float p50 %.1f p90 %.1f p99 %.1f max %.1f\n",rv[n/2],rv[n*9/10],rv[n*99/100],rv[n-1]);
}
