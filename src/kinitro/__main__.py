from kinitro.cli.main import main

main()
