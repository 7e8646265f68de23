#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <unistd.h>
#include <time.h>
static atomic_int stop; static unsigned long long cnt[8]; static int pin[8];
static void *run(void *a){ long i=(long)a; if(pin[i]>=0){cpu_set_t s;CPU_ZERO(&s);CPU_SET(pin[i],&s);sched_setaffinity(0,sizeof s,&s);}
 volatile unsigned long long q=0; unsigned long long n=0; while(!atomic_load_explicit(&stop,memory_order_relaxed)){for(int k=0;k<2000;k++)q+=k; n++;} cnt[i]=n; return 0;}
int main(int c,char**v){ int n=c-1; pthread_t t[8]; for(int i=0;i<n;i++){pin[i]=atoi(v[i+1]); pthread_create(&t[i],0,run,(void*)(long)i);} sleep(5); stop=1; unsigned long long tot=0; for(int i=0;i<n;i++){pthread_join(t[i],0); printf("%llu ",cnt[i]/5000); tot+=cnt[i];} printf(" total %llu k/s\n",tot/5000); }
