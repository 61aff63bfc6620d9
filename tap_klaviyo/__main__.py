from tap_klaviyo.tap import main

main()
